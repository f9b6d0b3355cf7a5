variable "name_prefix" {
  type        = string
  description = "Prefix of the bucket name, such as cardfraud-dev. The bucket name appends -data-lake- and the AWS account ID."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,29}$", var.name_prefix))
    error_message = "name_prefix must be 2 to 30 characters of lowercase letters, digits and hyphens, starting with a letter, so the bucket name stays within 63 characters."
  }
}

variable "raw_prefix" {
  type        = string
  description = "Key prefix of raw transaction data, moved to STANDARD_IA after raw_transition_days."
  default     = "raw/"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_=-]*/$", var.raw_prefix))
    error_message = "raw_prefix must be a key prefix ending in a slash, such as raw/."
  }
}

variable "raw_transition_days" {
  type        = number
  description = "Days after creation when objects under raw_prefix move to the STANDARD_IA storage class. S3 requires at least 30."
  default     = 30

  validation {
    condition     = var.raw_transition_days >= 30
    error_message = "raw_transition_days must be at least 30, the minimum S3 allows for a transition to STANDARD_IA."
  }
}

variable "noncurrent_version_expiration_days" {
  type        = number
  description = "Days after an object version becomes noncurrent when S3 deletes it."
  default     = 90

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1
    error_message = "noncurrent_version_expiration_days must be at least 1."
  }
}

variable "abort_incomplete_multipart_days" {
  type        = number
  description = "Days after initiation when S3 aborts an incomplete multipart upload and deletes its parts."
  default     = 7

  validation {
    condition     = var.abort_incomplete_multipart_days >= 1
    error_message = "abort_incomplete_multipart_days must be at least 1."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of a customer managed KMS key for default bucket encryption. Null uses the AWS managed key aws/s3."
  default     = null
}

variable "force_destroy" {
  type        = bool
  description = "Allow `terraform destroy` to delete the bucket while it still holds objects."
  default     = false
}
