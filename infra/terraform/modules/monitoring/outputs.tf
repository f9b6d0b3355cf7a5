output "rollback_alarm_names" {
  description = "Names of the alarms that roll a blue/green update back."
  value       = [aws_cloudwatch_metric_alarm.p99_latency.alarm_name, aws_cloudwatch_metric_alarm.errors_5xx.alarm_name]
}

output "endpoint_log_group_arn" {
  description = "ARN of the endpoint's log group."
  value       = aws_cloudwatch_log_group.endpoint.arn
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard of the endpoint, the service and the monitor."
  value       = aws_cloudwatch_dashboard.platform.dashboard_name
}
