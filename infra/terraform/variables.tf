variable "project" {
  type        = string
  description = "Project name, used as the prefix of every resource name and as the project tag."
  default     = "cardfraud"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,19}$", var.project))
    error_message = "project must be 2 to 20 characters of lowercase letters, digits and hyphens, starting with a letter, because it prefixes S3 bucket names."
  }
}

variable "environment" {
  type        = string
  description = "Deployment environment: dev, staging or prod."
  default     = "dev"

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be one of dev, staging or prod."
  }
}

variable "owner" {
  type        = string
  description = "Team or person accountable for the resources, written to the owner tag."
  default     = "fraud-ml-platform"

  validation {
    condition     = length(trimspace(var.owner)) > 0
    error_message = "owner must not be empty."
  }
}

variable "cost_center" {
  type        = string
  description = "Cost centre written to the cost-center tag for cost allocation reports."
  default     = "fraud-ml"

  validation {
    condition     = length(trimspace(var.cost_center)) > 0
    error_message = "cost_center must not be empty."
  }
}

variable "aws_region" {
  type        = string
  description = "AWS region for regional resources (the data lake bucket and the SNS topic)."
  default     = "eu-west-2"

  validation {
    condition     = can(regex("^[a-z]{2,4}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+$", var.aws_region))
    error_message = "aws_region must be a region code such as eu-west-2."
  }
}

variable "monthly_budget_gbp" {
  type        = number
  description = "Monthly AWS cost cap in pounds sterling (GBP). Alerts fire at 60% and 90% of actual cost and at 100% of forecast cost."
  default     = 50

  validation {
    condition     = var.monthly_budget_gbp > 0
    error_message = "monthly_budget_gbp must be greater than 0."
  }
}

variable "budget_currency" {
  type        = string
  description = "Currency that AWS Budgets reports for this account, as an ISO 4217 code. AWS Budgets compares cost in the account's currency, which is USD unless the account bills in another currency."
  default     = "USD"

  validation {
    condition     = can(regex("^[A-Z]{3}$", var.budget_currency))
    error_message = "budget_currency must be a three-letter ISO 4217 code in capitals, such as USD or GBP."
  }
}

variable "gbp_to_budget_currency_rate" {
  type        = number
  description = "Units of budget_currency per 1 GBP, used to convert monthly_budget_gbp into the budget limit. Ignored when budget_currency is GBP. The default 1.25 USD per GBP is an estimate set below recent rates, so alerts fire at or before the GBP threshold while the pound stays above 1.25 USD. Review it when the rate moves."
  default     = 1.25

  validation {
    condition     = var.gbp_to_budget_currency_rate > 0
    error_message = "gbp_to_budget_currency_rate must be greater than 0."
  }
}

variable "notification_email" {
  type        = string
  description = "Email address that receives budget alerts, both directly from AWS Budgets and through the SNS topic. Empty sends alerts to the SNS topic only."
  default     = ""

  validation {
    condition     = var.notification_email == "" || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.notification_email))
    error_message = "notification_email must be empty or an email address such as ops@example.com."
  }
}

variable "sns_use_customer_managed_key" {
  type        = bool
  description = "Encrypt the budget alert topic with a customer managed KMS key whose policy lets AWS Budgets publish. False uses the AWS managed key alias/aws/sns, which AWS Budgets cannot use, so alerts then reach only the email subscribers of the budget."
  default     = true
}

variable "data_lake_force_destroy" {
  type        = bool
  description = "Allow `terraform destroy` to delete the data lake bucket while it still holds objects. Keep false outside throwaway environments."
  default     = false
}

variable "audit_deletion_protection" {
  type        = bool
  description = "Protect the audit table from deletion. Teardown needs false; set true for prod."
  default     = false
}

variable "images_kept" {
  type        = number
  description = "Number of newest scorer images that the ECR lifecycle policy keeps."
  default     = 5
}

variable "ecr_force_delete" {
  type        = bool
  description = "Let `terraform destroy` delete the image repository while it holds images. Teardown deletes the images itself first."
  default     = false
}

variable "latency_p99_threshold_ms" {
  type        = number
  description = "p99 model latency in milliseconds above which a blue/green update rolls back."
  default     = 150
}

variable "log_retention_days" {
  type        = number
  description = "Days CloudWatch Logs keeps the endpoint, router and scheduler logs."
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of the periods CloudWatch Logs accepts, such as 30, 90 or 365."
  }
}

variable "api_token_sha256" {
  type        = list(string)
  description = "Hex SHA-256 digests of the bearer tokens that the API accepts. Empty rejects every request."
  sensitive   = true
  default     = []
}

variable "service_start_hour" {
  type        = number
  description = "Hour (0-23, service_timezone) when the endpoint is created on service days."
  default     = 8

  validation {
    condition     = var.service_start_hour >= 0 && var.service_start_hour <= 23
    error_message = "service_start_hour must be an hour from 0 to 23."
  }
}

variable "service_stop_hour" {
  type        = number
  description = "Hour (0-23, service_timezone) when the endpoint is deleted on service days; later than service_start_hour."
  default     = 20

  validation {
    condition     = var.service_stop_hour >= 1 && var.service_stop_hour <= 23
    error_message = "service_stop_hour must be an hour from 1 to 23."
  }
}

variable "service_days" {
  type        = string
  description = "Days when the endpoint runs, as the day-of-week field of a cron expression: MON-FRI or MON-SUN."
  default     = "MON-FRI"

  validation {
    condition     = contains(["MON-FRI", "MON-SUN"], var.service_days)
    error_message = "service_days must be MON-FRI or MON-SUN, the two day sets that `make cost` prices."
  }
}

variable "service_timezone" {
  type        = string
  description = "IANA time zone of the service hours."
  default     = "Europe/London"
}

variable "overnight_stop_enabled" {
  type        = bool
  description = "Delete the endpoint outside service hours and recreate it in the morning. False keeps it running day and night."
  default     = true
}

variable "feast_online_tables" {
  type        = list(string)
  description = "DynamoDB tables that `feast apply` creates for the online feature views (<Feast project>.<feature view>); the execution role may use exactly these."
  default     = ["cardfraud.card_state", "cardfraud.merchant_state"]
}

variable "github_repository" {
  type        = string
  description = "GitHub repository, as owner/name, whose deploy workflow may assume the deploy role."
  default     = "example-org/cardfraud"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be owner/name, such as example-org/cardfraud."
  }
}

variable "github_environment" {
  type        = string
  description = "GitHub environment, protected by required reviewers, whose jobs may assume the deploy role."
  default     = "production"
}

variable "create_github_oidc_provider" {
  type        = bool
  description = "Create the account's GitHub Actions OIDC provider; false when the account already has one."
  default     = true
}
