data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_id   = data.aws_caller_identity.current.account_id
  partition    = data.aws_partition.current.partition
  endpoint_arn = "arn:${local.partition}:sagemaker:${var.aws_region}:${local.account_id}:endpoint/${var.endpoint_name}"
}

# The router and the authorizer are two handlers of one file, packaged alone: it
# imports only the standard library and boto3.
data "archive_file" "router" {
  type        = "zip"
  source_file = var.router_source_file
  output_path = "${path.root}/.build/router.zip"
}

# --- Log groups, created before the functions so that they carry retention and key ---

resource "aws_cloudwatch_log_group" "router" {
  #checkov:skip=CKV_AWS_338:Retention is 30 days by default (log_retention_days): these are operational logs, and decisions are kept in the audit table, so a year of logs would only add storage cost.
  name              = "/aws/lambda/${var.name_prefix}-router"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_cloudwatch_log_group" "authorizer" {
  #checkov:skip=CKV_AWS_338:Retention is 30 days by default (log_retention_days): these are operational logs, and decisions are kept in the audit table, so a year of logs would only add storage cost.
  name              = "/aws/lambda/${var.name_prefix}-authorizer"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_cloudwatch_log_group" "access" {
  #checkov:skip=CKV_AWS_338:Retention is 30 days by default (log_retention_days): these are operational logs, and decisions are kept in the audit table, so a year of logs would only add storage cost.
  name              = "/aws/apigateway/${var.name_prefix}-api"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

# --- Roles ---

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

data "aws_iam_policy_document" "router" {
  statement {
    sid       = "InvokeScorer"
    effect    = "Allow"
    actions   = ["sagemaker:InvokeEndpoint"]
    resources = [local.endpoint_arn]
  }

  statement {
    sid       = "WriteRouterLogs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.router.arn}:*"]
  }

  statement {
    sid       = "DecryptSettings"
    effect    = "Allow"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

data "aws_iam_policy_document" "authorizer" {
  statement {
    sid       = "WriteAuthorizerLogs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.authorizer.arn}:*"]
  }

  statement {
    sid       = "DecryptSettings"
    effect    = "Allow"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role" "router" {
  name               = "${var.name_prefix}-router"
  assume_role_policy = data.aws_iam_policy_document.lambda_trust.json
}

resource "aws_iam_role_policy" "router" {
  name   = "${var.name_prefix}-router"
  role   = aws_iam_role.router.id
  policy = data.aws_iam_policy_document.router.json
}

resource "aws_iam_role" "authorizer" {
  name               = "${var.name_prefix}-authorizer"
  assume_role_policy = data.aws_iam_policy_document.lambda_trust.json
}

resource "aws_iam_role_policy" "authorizer" {
  name   = "${var.name_prefix}-authorizer"
  role   = aws_iam_role.authorizer.id
  policy = data.aws_iam_policy_document.authorizer.json
}

# --- Functions ---

resource "aws_lambda_function" "router" {
  #checkov:skip=CKV_AWS_50:X-Ray tracing is off; SageMaker's ModelLatency and the API access log give the latency per request without the per-trace charge.
  #checkov:skip=CKV_AWS_117:No VPC: the router calls only the SageMaker runtime API over HTTPS, and a VPC would need NAT or interface endpoints billed by the hour.
  #checkov:skip=CKV_AWS_116:No dead-letter queue: API Gateway invokes the router synchronously and returns its error to the client; a DLQ applies only to asynchronous invocations.
  #checkov:skip=CKV_AWS_115:No reserved concurrency: new accounts have a concurrency quota of 10, below which AWS refuses any reservation; the API stage throttles instead.
  #checkov:skip=CKV_AWS_272:No code signing: the package is built from this repository by Terraform, which records its hash.
  function_name    = "${var.name_prefix}-router"
  role             = aws_iam_role.router.arn
  runtime          = "python3.12"
  handler          = "router.handle"
  filename         = data.archive_file.router.output_path
  source_code_hash = data.archive_file.router.output_base64sha256
  memory_size      = var.router_memory_mb
  timeout          = 10
  kms_key_arn      = var.kms_key_arn

  environment {
    variables = {
      ENDPOINT_NAME = var.endpoint_name
    }
  }

  depends_on = [aws_cloudwatch_log_group.router, aws_iam_role_policy.router]
}

resource "aws_lambda_function" "authorizer" {
  #checkov:skip=CKV_AWS_50:X-Ray tracing is off; the authorizer's decision is logged with the request id.
  #checkov:skip=CKV_AWS_117:No VPC: the authorizer calls no AWS service, it compares token digests in memory.
  #checkov:skip=CKV_AWS_116:No dead-letter queue: API Gateway invokes the authorizer synchronously.
  #checkov:skip=CKV_AWS_115:No reserved concurrency: new accounts have a concurrency quota of 10, below which AWS refuses any reservation; the API stage throttles instead.
  #checkov:skip=CKV_AWS_272:No code signing: the package is built from this repository by Terraform, which records its hash.
  function_name    = "${var.name_prefix}-authorizer"
  role             = aws_iam_role.authorizer.arn
  runtime          = "python3.12"
  handler          = "router.authorize"
  filename         = data.archive_file.router.output_path
  source_code_hash = data.archive_file.router.output_base64sha256
  memory_size      = 128
  timeout          = 3
  kms_key_arn      = var.kms_key_arn

  environment {
    variables = {
      TOKEN_SHA256 = join(",", var.token_sha256)
    }
  }

  depends_on = [aws_cloudwatch_log_group.authorizer, aws_iam_role_policy.authorizer]
}

# --- HTTP API ---

resource "aws_apigatewayv2_api" "this" {
  name          = "${var.name_prefix}-api"
  protocol_type = "HTTP"
  description   = "Card-fraud scoring and explanations, routed to the SageMaker endpoint."
}

resource "aws_apigatewayv2_authorizer" "token" {
  api_id                            = aws_apigatewayv2_api.this.id
  name                              = "${var.name_prefix}-token"
  authorizer_type                   = "REQUEST"
  authorizer_uri                    = aws_lambda_function.authorizer.invoke_arn
  authorizer_payload_format_version = "2.0"
  enable_simple_responses           = true
  identity_sources                  = ["$request.header.Authorization"]
  authorizer_result_ttl_in_seconds  = 300
}

resource "aws_apigatewayv2_integration" "router" {
  api_id                 = aws_apigatewayv2_api.this.id
  integration_type       = "AWS_PROXY"
  integration_uri        = aws_lambda_function.router.invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = 10000
}

resource "aws_apigatewayv2_route" "score" {
  api_id             = aws_apigatewayv2_api.this.id
  route_key          = "POST /score"
  target             = "integrations/${aws_apigatewayv2_integration.router.id}"
  authorization_type = "CUSTOM"
  authorizer_id      = aws_apigatewayv2_authorizer.token.id
}

resource "aws_apigatewayv2_route" "explanation" {
  api_id             = aws_apigatewayv2_api.this.id
  route_key          = "GET /explanations/{transaction_id}"
  target             = "integrations/${aws_apigatewayv2_integration.router.id}"
  authorization_type = "CUSTOM"
  authorizer_id      = aws_apigatewayv2_authorizer.token.id
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.this.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_burst_limit = var.throttle_burst
    throttling_rate_limit  = var.throttle_rate
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format = jsonencode({
      requestId         = "$context.requestId"
      routeKey          = "$context.routeKey"
      status            = "$context.status"
      integrationStatus = "$context.integrationStatus"
      latencyMs         = "$context.responseLatency"
      authorizerError   = "$context.authorizer.error"
      client            = "$context.authorizer.client"
    })
  }
}

resource "aws_lambda_permission" "api_invokes_router" {
  statement_id  = "ApiGatewayInvokesRouter"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.router.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.this.execution_arn}/*/*"
}

resource "aws_lambda_permission" "api_invokes_authorizer" {
  statement_id  = "ApiGatewayInvokesAuthorizer"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.authorizer.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.this.execution_arn}/authorizers/${aws_apigatewayv2_authorizer.token.id}"
}
