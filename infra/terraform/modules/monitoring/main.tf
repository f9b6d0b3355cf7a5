locals {
  # SageMaker reports ModelLatency in microseconds, so the millisecond limit is
  # converted here: 150 ms is 150000 microseconds.
  model_latency_threshold_us = var.latency_p99_threshold_ms * 1000
}

# SageMaker writes the container's logs here. Terraform creates the group first so
# that it has a retention period and the platform key; teardown deletes it.
resource "aws_cloudwatch_log_group" "endpoint" {
  #checkov:skip=CKV_AWS_338:Retention is 30 days by default (log_retention_days): these are operational logs, and decisions are kept in the audit table, so a year of logs would only add storage cost.
  name              = "/aws/sagemaker/Endpoints/${var.endpoint_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

# The two alarms that roll a blue/green update back. The deploy command names them
# in UpdateEndpoint's AutoRollbackConfiguration. At night the endpoint is deleted
# and sends no data, which counts as not breaching.
resource "aws_cloudwatch_metric_alarm" "p99_latency" {
  alarm_name          = "${var.endpoint_name}-p99-latency"
  alarm_description   = "p99 ModelLatency of ${var.endpoint_name} above ${var.latency_p99_threshold_ms} ms (the metric is in microseconds)."
  namespace           = "AWS/SageMaker"
  metric_name         = "ModelLatency"
  extended_statistic  = "p99"
  period              = 60
  evaluation_periods  = 3
  datapoints_to_alarm = 2
  threshold           = local.model_latency_threshold_us
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]

  dimensions = {
    EndpointName = var.endpoint_name
    VariantName  = var.variant_name
  }
}

resource "aws_cloudwatch_metric_alarm" "errors_5xx" {
  alarm_name          = "${var.endpoint_name}-5xx"
  alarm_description   = "Any 5xx answer from ${var.endpoint_name} within a minute."
  namespace           = "AWS/SageMaker"
  metric_name         = "Invocation5XXErrors"
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]

  dimensions = {
    EndpointName = var.endpoint_name
    VariantName  = var.variant_name
  }
}
