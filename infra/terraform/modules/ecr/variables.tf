variable "name_prefix" {
  type        = string
  description = "Prefix of the repository name, such as cardfraud-dev; the repository is <prefix>-scorer."
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the customer managed KMS key that encrypts the images."
}

variable "images_kept" {
  type        = number
  description = "Number of newest images the lifecycle policy keeps. At least 2, so a rollback finds its image."
  default     = 5

  validation {
    condition     = var.images_kept >= 2
    error_message = "images_kept must be at least 2 so that the previous image survives for a rollback."
  }
}

variable "force_delete" {
  type        = bool
  description = "Let `terraform destroy` delete the repository while it still holds images."
  default     = false
}
