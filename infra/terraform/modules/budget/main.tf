data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_id         = data.aws_caller_identity.current.account_id
  budgets_source_arn = "arn:${data.aws_partition.current.partition}:budgets::${local.account_id}:*"
  alarms_source_arn  = "arn:${data.aws_partition.current.partition}:cloudwatch:*:${local.account_id}:alarm:${var.name_prefix}-*"
  email_subscribers  = var.notification_email == "" ? [] : [var.notification_email]

  # The key policy of the AWS managed key alias/aws/sns only admits principals of
  # this account calling through SNS. AWS Budgets publishes as a service
  # principal, so it needs a customer managed key that grants it access.
  topic_kms_key_id = var.use_customer_managed_key ? aws_kms_key.sns[0].arn : "alias/aws/sns"
}

# --- Encryption key for the alert topic ---

data "aws_iam_policy_document" "sns_key" {
  #checkov:skip=CKV_AWS_109:A key policy's "*" resource means this key only; the account root statement is AWS's default key policy, without which the key cannot be administered.
  #checkov:skip=CKV_AWS_111:A key policy's "*" resource means this key only; the service statements are limited by source account or encryption context.
  #checkov:skip=CKV_AWS_356:In a key policy the resource must be "*", which means the key the policy is attached to.
  count = var.use_customer_managed_key ? 1 : 0

  statement {
    sid       = "AccountAdministersKey"
    effect    = "Allow"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudWatchEncryptsAlarms"
    effect    = "Allow"
    actions   = ["kms:GenerateDataKey*", "kms:Decrypt"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "BudgetsEncryptsAlerts"
    effect    = "Allow"
    actions   = ["kms:GenerateDataKey*", "kms:Decrypt"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["budgets.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_kms_key" "sns" {
  count = var.use_customer_managed_key ? 1 : 0

  description             = "Encrypts the ${var.name_prefix} alert SNS topic."
  enable_key_rotation     = true
  deletion_window_in_days = 7
  policy                  = data.aws_iam_policy_document.sns_key[0].json
}

resource "aws_kms_alias" "sns" {
  count = var.use_customer_managed_key ? 1 : 0

  name          = "alias/${var.name_prefix}-alerts"
  target_key_id = aws_kms_key.sns[0].key_id
}

# --- Alert topic: budget notifications and CloudWatch alarms ---

resource "aws_sns_topic" "alerts" {
  name              = "${var.name_prefix}-alerts"
  kms_master_key_id = local.topic_kms_key_id
}

data "aws_iam_policy_document" "alerts_topic" {
  statement {
    sid    = "AccountManagesTopic"
    effect = "Allow"
    actions = [
      "SNS:GetTopicAttributes",
      "SNS:SetTopicAttributes",
      "SNS:AddPermission",
      "SNS:RemovePermission",
      "SNS:DeleteTopic",
      "SNS:Subscribe",
      "SNS:ListSubscriptionsByTopic",
      "SNS:Publish",
    ]
    resources = [aws_sns_topic.alerts.arn]

    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = "BudgetsPublishAlerts"
    effect    = "Allow"
    actions   = ["SNS:Publish"]
    resources = [aws_sns_topic.alerts.arn]

    principals {
      type        = "Service"
      identifiers = ["budgets.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [local.budgets_source_arn]
    }
  }

  statement {
    sid       = "CloudWatchPublishAlarms"
    effect    = "Allow"
    actions   = ["SNS:Publish"]
    resources = [aws_sns_topic.alerts.arn]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [local.alarms_source_arn]
    }
  }
}

resource "aws_sns_topic_policy" "alerts" {
  arn    = aws_sns_topic.alerts.arn
  policy = data.aws_iam_policy_document.alerts_topic.json
}

# NOTE: AWS sends a confirmation email, and the subscription stays pending
# until the recipient confirms it. Terraform cannot confirm it.
resource "aws_sns_topic_subscription" "email" {
  count = var.notification_email == "" ? 0 : 1

  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = var.notification_email
}

# --- Monthly cost budget ---

resource "aws_budgets_budget" "monthly_cost" {
  name         = "${var.name_prefix}-monthly-cost"
  budget_type  = "COST"
  time_unit    = "MONTHLY"
  limit_amount = format("%.2f", var.limit_amount)
  limit_unit   = var.limit_unit

  notification {
    comparison_operator        = "GREATER_THAN"
    threshold                  = 60
    threshold_type             = "PERCENTAGE"
    notification_type          = "ACTUAL"
    subscriber_sns_topic_arns  = [aws_sns_topic.alerts.arn]
    subscriber_email_addresses = local.email_subscribers
  }

  notification {
    comparison_operator        = "GREATER_THAN"
    threshold                  = 90
    threshold_type             = "PERCENTAGE"
    notification_type          = "ACTUAL"
    subscriber_sns_topic_arns  = [aws_sns_topic.alerts.arn]
    subscriber_email_addresses = local.email_subscribers
  }

  notification {
    comparison_operator        = "GREATER_THAN"
    threshold                  = 100
    threshold_type             = "PERCENTAGE"
    notification_type          = "FORECASTED"
    subscriber_sns_topic_arns  = [aws_sns_topic.alerts.arn]
    subscriber_email_addresses = local.email_subscribers
  }

  # The topic policy goes first, so AWS Budgets may publish from the first alert.
  depends_on = [aws_sns_topic_policy.alerts]
}
