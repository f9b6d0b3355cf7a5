output "sagemaker_execution_role_arn" {
  description = "ARN of the role that SageMaker assumes to run the scoring container."
  value       = aws_iam_role.sagemaker_execution.arn
}

output "deploy_role_arn" {
  description = "ARN of the role the GitHub deploy workflow assumes through OIDC."
  value       = aws_iam_role.deploy.arn
}
