output "api_endpoint" {
  description = "Base URL of the HTTP API."
  value       = aws_apigatewayv2_api.this.api_endpoint
}

output "router_role_arn" {
  description = "ARN of the router function's role."
  value       = aws_iam_role.router.arn
}
