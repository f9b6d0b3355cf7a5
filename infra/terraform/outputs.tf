output "data_lake_bucket_name" {
  description = "Name of the data lake S3 bucket."
  value       = module.data_lake.bucket_name
}

output "data_lake_bucket_arn" {
  description = "ARN of the data lake S3 bucket."
  value       = module.data_lake.bucket_arn
}

output "budget_name" {
  description = "Name of the monthly cost budget."
  value       = module.budget.budget_name
}

output "budget_limit" {
  description = "Monthly budget limit as AWS Budgets stores it: amount and currency code."
  value = {
    amount   = module.budget.limit_amount
    currency = module.budget.limit_unit
  }
}

output "budget_alerts_topic_arn" {
  description = "ARN of the SNS topic that receives budget alerts."
  value       = module.budget.sns_topic_arn
}
