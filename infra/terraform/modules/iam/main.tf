data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_id       = data.aws_caller_identity.current.account_id
  partition        = data.aws_partition.current.partition
  sagemaker_arn    = "arn:${local.partition}:sagemaker:${var.aws_region}:${local.account_id}"
  dynamodb_arn     = "arn:${local.partition}:dynamodb:${var.aws_region}:${local.account_id}"
  feature_tables   = [for table in var.feast_online_tables : "${local.dynamodb_arn}:table/${table}"]
  alarm_arns       = [for name in var.rollback_alarm_names : "arn:${local.partition}:cloudwatch:${var.aws_region}:${local.account_id}:alarm:${name}"]
  parameter_arn    = "arn:${local.partition}:ssm:${var.aws_region}:${local.account_id}:parameter${var.live_config_parameter}"
  github_oidc_host = "token.actions.githubusercontent.com"
  github_oidc_arn = (
    var.create_github_oidc_provider
    ? aws_iam_openid_connect_provider.github[0].arn
    : "arn:${local.partition}:iam::${local.account_id}:oidc-provider/${local.github_oidc_host}"
  )
}

# --- SageMaker execution role: what the scoring container may reach ---

data "aws_iam_policy_document" "sagemaker_trust" {
  statement {
    sid     = "SageMakerAssumesRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["sagemaker.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "sagemaker_execution" {
  statement {
    sid       = "PullScorerImage"
    effect    = "Allow"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [var.ecr_repository_arn]
  }

  # GetAuthorizationToken has no resource type, so IAM accepts only "*" for it. The
  # token alone grants nothing: each pull is checked against PullScorerImage.
  statement {
    sid       = "GetRegistryToken"
    effect    = "Allow"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "WriteEndpointLogs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = [var.endpoint_log_group_arn, "${var.endpoint_log_group_arn}:*"]
  }

  statement {
    sid       = "ReadModelArtifacts"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["${var.data_lake_bucket_arn}/${var.model_prefix}*"]
  }

  statement {
    sid       = "ReadFeastRegistry"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["${var.data_lake_bucket_arn}/${var.feast_registry_key}"]
  }

  statement {
    sid       = "WriteAuditLog"
    effect    = "Allow"
    actions   = ["dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:GetItem"]
    resources = [var.audit_table_arn]
  }

  statement {
    sid    = "ReadWriteOnlineFeatures"
    effect = "Allow"
    actions = [
      "dynamodb:BatchGetItem",
      "dynamodb:GetItem",
      "dynamodb:BatchWriteItem",
      "dynamodb:PutItem",
    ]
    resources = local.feature_tables
  }

  statement {
    sid       = "UseAuditTableKey"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["dynamodb.${var.aws_region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "sagemaker_execution" {
  name               = "${var.name_prefix}-sagemaker-execution"
  assume_role_policy = data.aws_iam_policy_document.sagemaker_trust.json
}

resource "aws_iam_role_policy" "sagemaker_execution" {
  name   = "${var.name_prefix}-sagemaker-execution"
  role   = aws_iam_role.sagemaker_execution.id
  policy = data.aws_iam_policy_document.sagemaker_execution.json
}

# --- GitHub Actions deploy role, assumed through OIDC: no long-lived keys ---

# An account has one provider per URL. Set create_github_oidc_provider = false when
# another stack in the account already created it.
resource "aws_iam_openid_connect_provider" "github" {
  count = var.create_github_oidc_provider ? 1 : 0

  url            = "https://${local.github_oidc_host}"
  client_id_list = ["sts.amazonaws.com"]
}

data "aws_iam_policy_document" "deploy_trust" {
  statement {
    sid     = "GitHubEnvironmentAssumesRole"
    effect  = "Allow"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [local.github_oidc_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.github_oidc_host}:aud"
      values   = ["sts.amazonaws.com"]
    }

    # Only workflow jobs of this repository that run in the named environment, which
    # GitHub guards with required reviewers.
    condition {
      test     = "StringEquals"
      variable = "${local.github_oidc_host}:sub"
      values   = ["repo:${var.github_repository}:environment:${var.github_environment}"]
    }
  }
}

data "aws_iam_policy_document" "deploy" {
  statement {
    sid    = "ManageReleases"
    effect = "Allow"
    actions = [
      "sagemaker:AddTags",
      "sagemaker:CreateEndpoint",
      "sagemaker:CreateEndpointConfig",
      "sagemaker:CreateModel",
      "sagemaker:DescribeEndpoint",
      "sagemaker:DescribeEndpointConfig",
      "sagemaker:InvokeEndpoint",
      "sagemaker:ListTags",
      "sagemaker:UpdateEndpoint",
    ]
    resources = [
      "${local.sagemaker_arn}:model/${var.endpoint_name}-*",
      "${local.sagemaker_arn}:endpoint-config/${var.endpoint_name}-*",
      "${local.sagemaker_arn}:endpoint/${var.endpoint_name}",
    ]
  }

  statement {
    sid       = "PassExecutionRole"
    effect    = "Allow"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.sagemaker_execution.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["sagemaker.amazonaws.com"]
    }
  }

  statement {
    sid    = "PushScorerImage"
    effect = "Allow"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:CompleteLayerUpload",
      "ecr:DescribeImages",
      "ecr:InitiateLayerUpload",
      "ecr:PutImage",
      "ecr:UploadLayerPart",
    ]
    resources = [var.ecr_repository_arn]
  }

  # GetAuthorizationToken has no resource type, so IAM accepts only "*" for it.
  statement {
    sid       = "GetRegistryToken"
    effect    = "Allow"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "UseImageKey"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["ecr.${var.aws_region}.amazonaws.com"]
    }
  }

  statement {
    sid       = "CheckRollbackAlarms"
    effect    = "Allow"
    actions   = ["cloudwatch:DescribeAlarms"]
    resources = local.alarm_arns
  }

  statement {
    sid       = "RecordLiveConfig"
    effect    = "Allow"
    actions   = ["ssm:GetParameter", "ssm:PutParameter"]
    resources = [local.parameter_arn]
  }
}

resource "aws_iam_role" "deploy" {
  name                 = "${var.name_prefix}-github-deploy"
  assume_role_policy   = data.aws_iam_policy_document.deploy_trust.json
  max_session_duration = 3600
}

resource "aws_iam_role_policy" "deploy" {
  name   = "${var.name_prefix}-github-deploy"
  role   = aws_iam_role.deploy.id
  policy = data.aws_iam_policy_document.deploy.json
}
