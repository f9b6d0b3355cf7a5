output "repository_url" {
  description = "URL of the scorer image repository, the image URI without its tag."
  value       = aws_ecr_repository.scorer.repository_url
}

output "repository_arn" {
  description = "ARN of the scorer image repository."
  value       = aws_ecr_repository.scorer.arn
}
