variable "name_prefix" {
  type        = string
  description = "Prefix of the table name, such as cardfraud-dev; the table is <prefix>-audit."
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the customer managed KMS key that encrypts the table."
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse DeleteTable while true. Teardown needs it false, so set it true only for prod."
  default     = false
}
