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

data "aws_region" "current" {}

# One dashboard for the platform owner: the endpoint's own metrics from SageMaker,
# the service's metrics that its Embedded Metric Format log lines create, and the
# figures the scheduled monitor publishes (drift, decision mix, matured
# performance). SEARCH expressions pick up every model version. Per-feature drift
# stays in Prometheus and the report: each CloudWatch custom metric is billed.
resource "aws_cloudwatch_dashboard" "platform" {
  dashboard_name = "${var.endpoint_name}-monitoring"
  dashboard_body = jsonencode({
    widgets = [
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title  = "Model latency p50 and p99 (microseconds)"
          region = data.aws_region.current.name
          stat   = "p99"
          period = 60
          metrics = [
            ["AWS/SageMaker", "ModelLatency", "EndpointName", var.endpoint_name, "VariantName", var.variant_name, { stat = "p50", label = "p50" }],
            ["AWS/SageMaker", "ModelLatency", "EndpointName", var.endpoint_name, "VariantName", var.variant_name, { stat = "p99", label = "p99" }],
          ]
          annotations = { horizontal = [{ label = "rollback", value = local.model_latency_threshold_us }] }
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title  = "Invocations and 5xx errors"
          region = data.aws_region.current.name
          stat   = "Sum"
          period = 60
          metrics = [
            ["AWS/SageMaker", "Invocations", "EndpointName", var.endpoint_name, "VariantName", var.variant_name],
            ["AWS/SageMaker", "Invocation5XXErrors", "EndpointName", var.endpoint_name, "VariantName", var.variant_name],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 12, height = 6
        properties = {
          title  = "Service latency p99 (ms) and degraded scores, from EMF"
          region = data.aws_region.current.name
          period = 60
          metrics = [
            [var.service_namespace, "Latency", "Route", "/invocations", { stat = "p99", label = "p99 latency" }],
            [var.service_namespace, "Degraded", "Route", "/invocations", { stat = "Sum", yAxis = "right" }],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 6, width = 12, height = 6
        properties = {
          title  = "Decision mix, from EMF"
          region = data.aws_region.current.name
          stat   = "Sum"
          period = 300
          metrics = [
            [var.service_namespace, "Approve", "Route", "/invocations"],
            [var.service_namespace, "Review", "Route", "/invocations"],
            [var.service_namespace, "Decline", "Route", "/invocations"],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 12, width = 12, height = 6
        properties = {
          title  = "Largest feature PSI and score PSI (last monitored day)"
          region = data.aws_region.current.name
          period = 86400
          metrics = [
            [{ expression = "SEARCH('{${var.monitor_namespace},ModelVersion} MetricName=\"MaxFeaturePsi\"', 'Maximum', 86400)", id = "features" }],
            [{ expression = "SEARCH('{${var.monitor_namespace},ModelVersion} MetricName=\"ScorePsi\"', 'Maximum', 86400)", id = "score" }],
          ]
          annotations = { horizontal = [{ label = "drift alert", value = var.psi_alert_threshold }] }
        }
      },
      {
        type = "metric", x = 12, y = 12, width = 12, height = 6
        properties = {
          title  = "Matured average precision with its interval, and the unlabelled share"
          region = data.aws_region.current.name
          period = 86400
          metrics = [
            [{ expression = "SEARCH('{${var.monitor_namespace},Bound,ModelVersion} MetricName=\"MaturedAveragePrecision\"', 'Average', 86400)", id = "ap" }],
            [{ expression = "SEARCH('{${var.monitor_namespace},ModelVersion} MetricName=\"UnlabelledShare\"', 'Average', 86400)", id = "unlabelled" }],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 18, width = 24, height = 6
        properties = {
          title  = "Monitor alerts and review queue"
          region = data.aws_region.current.name
          period = 86400
          metrics = [
            [{ expression = "SEARCH('{${var.monitor_namespace},Kind,ModelVersion} MetricName=\"Alerts\"', 'Maximum', 86400)", id = "alerts" }],
            [{ expression = "SEARCH('{${var.monitor_namespace},ModelVersion} MetricName=\"ReviewQueue\"', 'Maximum', 86400)", id = "queue" }],
          ]
        }
      },
    ]
  })
}
