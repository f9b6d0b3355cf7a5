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

output "api_endpoint" {
  description = "Base URL of the HTTP API: POST /score and GET /explanations/{transaction_id}."
  value       = module.api.api_endpoint
}

output "ecr_repository_url" {
  description = "Image repository of the scorer; `cardfraud deploy release --image-uri` takes <url>:<tag>."
  value       = module.ecr.repository_url
}

output "sagemaker_execution_role_arn" {
  description = "Role that SageMaker assumes to run the scorer container."
  value       = module.iam.sagemaker_execution_role_arn
}

output "deploy_role_arn" {
  description = "Role the GitHub deploy workflow assumes through OIDC."
  value       = module.iam.deploy_role_arn
}

output "audit_table_name" {
  description = "DynamoDB table of the decision audit log."
  value       = module.audit_table.table_name
}

output "rollback_alarm_names" {
  description = "CloudWatch alarms that roll a blue/green update back."
  value       = module.monitoring.rollback_alarm_names
}
