variable "name_prefix" {
  type        = string
  description = "Prefix of the budget, SNS topic and KMS alias names, such as cardfraud-dev."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,49}$", var.name_prefix))
    error_message = "name_prefix must be 2 to 50 characters of lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "limit_amount" {
  type        = number
  description = "Monthly cost limit in limit_unit. AWS Budgets compares cost in the account's currency, so convert a cap set in another currency before passing it."

  validation {
    condition     = var.limit_amount > 0
    error_message = "limit_amount must be greater than 0."
  }
}

variable "limit_unit" {
  type        = string
  description = "ISO 4217 code of the account's currency in AWS Budgets, such as USD or GBP."
  default     = "USD"

  validation {
    condition     = can(regex("^[A-Z]{3}$", var.limit_unit))
    error_message = "limit_unit must be a three-letter ISO 4217 code in capitals, such as USD."
  }
}

variable "notification_email" {
  type        = string
  description = "Email address subscribed to the alert topic and to every budget notification. Empty adds no email subscriber."
  default     = ""

  validation {
    condition     = var.notification_email == "" || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.notification_email))
    error_message = "notification_email must be empty or an email address such as ops@example.com."
  }
}

variable "use_customer_managed_key" {
  type        = bool
  description = "Encrypt the topic with a customer managed KMS key that AWS Budgets may use. False uses the AWS managed key alias/aws/sns, which AWS Budgets cannot use to publish."
  default     = true
}
