data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_id      = data.aws_caller_identity.current.account_id
  partition       = data.aws_partition.current.partition
  sagemaker_arn   = "arn:${local.partition}:sagemaker:${var.aws_region}:${local.account_id}"
  parameter_arn   = "arn:${local.partition}:ssm:${var.aws_region}:${local.account_id}:parameter${var.live_config_parameter}"
  function_name   = "${var.name_prefix}-endpoint-scheduler"
  start_hour_cron = "cron(0 ${var.start_hour} ? * ${var.days} *)"
  stop_hour_cron  = "cron(0 ${var.stop_hour} ? * ${var.days} *)"
}

data "archive_file" "scheduler" {
  type        = "zip"
  source_file = var.scheduler_source_file
  output_path = "${path.root}/.build/scheduler.zip"
}

resource "aws_cloudwatch_log_group" "scheduler" {
  #checkov:skip=CKV_AWS_338:Retention is 30 days by default (log_retention_days): these are operational logs, and decisions are kept in the audit table, so a year of logs would only add storage cost.
  name              = "/aws/lambda/${local.function_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

# --- The function that deletes and recreates the endpoint ---

data "aws_iam_policy_document" "lambda_trust" {
  statement {
    sid     = "LambdaAssumesRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "function" {
  statement {
    sid       = "StopAndStartEndpoint"
    effect    = "Allow"
    actions   = ["sagemaker:DescribeEndpoint", "sagemaker:DeleteEndpoint", "sagemaker:CreateEndpoint"]
    resources = ["${local.sagemaker_arn}:endpoint/${var.endpoint_name}"]
  }

  statement {
    sid       = "UseLiveConfig"
    effect    = "Allow"
    actions   = ["sagemaker:CreateEndpoint"]
    resources = ["${local.sagemaker_arn}:endpoint-config/${var.endpoint_name}-*"]
  }

  statement {
    sid       = "ReadLiveConfigName"
    effect    = "Allow"
    actions   = ["ssm:GetParameter"]
    resources = [local.parameter_arn]
  }

  statement {
    sid       = "WriteSchedulerLogs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.scheduler.arn}:*"]
  }

  statement {
    sid       = "DecryptSettings"
    effect    = "Allow"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role" "function" {
  name               = local.function_name
  assume_role_policy = data.aws_iam_policy_document.lambda_trust.json
}

resource "aws_iam_role_policy" "function" {
  name   = local.function_name
  role   = aws_iam_role.function.id
  policy = data.aws_iam_policy_document.function.json
}

resource "aws_lambda_function" "scheduler" {
  #checkov:skip=CKV_AWS_50:X-Ray tracing is off; the function runs twice a day and logs each action.
  #checkov:skip=CKV_AWS_117:No VPC: the function calls only the SageMaker and SSM APIs, and a VPC would need NAT or interface endpoints billed by the hour.
  #checkov:skip=CKV_AWS_116:No dead-letter queue: EventBridge Scheduler retries the invocation and keeps the failure in its own metrics.
  #checkov:skip=CKV_AWS_115:No reserved concurrency: new accounts have a concurrency quota of 10, below which AWS refuses any reservation; two invocations a day need none.
  #checkov:skip=CKV_AWS_272:No code signing: the package is built from this repository by Terraform, which records its hash.
  function_name    = local.function_name
  role             = aws_iam_role.function.arn
  runtime          = "python3.12"
  handler          = "scheduler.handle"
  filename         = data.archive_file.scheduler.output_path
  source_code_hash = data.archive_file.scheduler.output_base64sha256
  memory_size      = 128
  timeout          = 30
  kms_key_arn      = var.kms_key_arn

  environment {
    variables = {
      ENDPOINT_NAME         = var.endpoint_name
      LIVE_CONFIG_PARAMETER = var.live_config_parameter
    }
  }

  depends_on = [aws_cloudwatch_log_group.scheduler, aws_iam_role_policy.function]
}

# --- The schedules ---

data "aws_iam_policy_document" "scheduler_trust" {
  statement {
    sid     = "SchedulerAssumesRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "invoke" {
  statement {
    sid       = "InvokeEndpointScheduler"
    effect    = "Allow"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.scheduler.arn]
  }

  statement {
    sid       = "DecryptScheduleInput"
    effect    = "Allow"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role" "invoke" {
  name               = "${var.name_prefix}-endpoint-schedule"
  assume_role_policy = data.aws_iam_policy_document.scheduler_trust.json
}

resource "aws_iam_role_policy" "invoke" {
  name   = "${var.name_prefix}-endpoint-schedule"
  role   = aws_iam_role.invoke.id
  policy = data.aws_iam_policy_document.invoke.json
}

resource "aws_scheduler_schedule" "start" {
  name                         = "${var.name_prefix}-endpoint-start"
  kms_key_arn                  = var.kms_key_arn
  schedule_expression          = local.start_hour_cron
  schedule_expression_timezone = var.timezone
  state                        = var.enabled ? "ENABLED" : "DISABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.scheduler.arn
    role_arn = aws_iam_role.invoke.arn
    input    = jsonencode({ action = "start" })

    retry_policy {
      maximum_retry_attempts = 3
    }
  }
}

resource "aws_scheduler_schedule" "stop" {
  name                         = "${var.name_prefix}-endpoint-stop"
  kms_key_arn                  = var.kms_key_arn
  schedule_expression          = local.stop_hour_cron
  schedule_expression_timezone = var.timezone
  state                        = var.enabled ? "ENABLED" : "DISABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.scheduler.arn
    role_arn = aws_iam_role.invoke.arn
    input    = jsonencode({ action = "stop" })

    retry_policy {
      maximum_retry_attempts = 3
    }
  }
}
