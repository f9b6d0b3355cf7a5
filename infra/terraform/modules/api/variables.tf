variable "name_prefix" {
  type        = string
  description = "Prefix of every name in this module, such as cardfraud-dev."
}

variable "aws_region" {
  type        = string
  description = "Region of the SageMaker endpoint that the router invokes."
}

variable "endpoint_name" {
  type        = string
  description = "Name of the SageMaker endpoint that the router forwards to."
}

variable "router_source_file" {
  type        = string
  description = "Path of router.py, the only file of the Lambda package."
}

variable "token_sha256" {
  type        = list(string)
  description = "Hex SHA-256 digests of the bearer tokens the authorizer accepts. Empty rejects every request."
  sensitive   = true
  default     = []

  validation {
    condition     = alltrue([for digest in var.token_sha256 : can(regex("^[0-9a-f]{64}$", digest))])
    error_message = "token_sha256 entries must be lowercase hex SHA-256 digests of 64 characters, such as the output of `printf %s TOKEN | sha256sum`."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the KMS key that encrypts the log groups and the functions' environment variables."
}

variable "router_memory_mb" {
  type        = number
  description = "Memory of the router function in MB; Lambda bills GB-seconds."
  default     = 256
}

variable "throttle_rate" {
  type        = number
  description = "Steady-state request rate limit of the API stage, in requests per second."
  default     = 50
}

variable "throttle_burst" {
  type        = number
  description = "Burst limit of the API stage, in requests."
  default     = 100
}

variable "log_retention_days" {
  type        = number
  description = "Days CloudWatch Logs keeps the router, authorizer and access logs."
  default     = 30
}
