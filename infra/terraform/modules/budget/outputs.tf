output "budget_name" {
  description = "Name of the monthly cost budget."
  value       = aws_budgets_budget.monthly_cost.name
}

output "limit_amount" {
  description = "Monthly limit as AWS Budgets stores it, a decimal string with two places."
  value       = aws_budgets_budget.monthly_cost.limit_amount
}

output "limit_unit" {
  description = "Currency code of the monthly limit."
  value       = aws_budgets_budget.monthly_cost.limit_unit
}

output "sns_topic_arn" {
  description = "ARN of the SNS topic that receives budget notifications and CloudWatch alarms."
  value       = aws_sns_topic.alerts.arn
}

output "sns_kms_key_arn" {
  description = "ARN of the customer managed KMS key that encrypts the topic, or null when the topic uses alias/aws/sns."
  value       = var.use_customer_managed_key ? aws_kms_key.sns[0].arn : null
}
