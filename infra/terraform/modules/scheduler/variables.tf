variable "name_prefix" {
  type        = string
  description = "Prefix of every name in this module, such as cardfraud-dev."
}

variable "aws_region" {
  type        = string
  description = "Region of the endpoint and the SSM parameter."
}

variable "endpoint_name" {
  type        = string
  description = "Name of the SageMaker endpoint to stop and start."
}

variable "live_config_parameter" {
  type        = string
  description = "Name of the SSM parameter that holds the endpoint configuration to start from, starting with a slash."
}

variable "scheduler_source_file" {
  type        = string
  description = "Path of scheduler.py, the only file of the Lambda package."
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the KMS key that encrypts the log group and the function's environment variables."
}

variable "start_hour" {
  type        = number
  description = "Hour (0-23, in timezone) when the endpoint is created on service days."
  default     = 8
}

variable "stop_hour" {
  type        = number
  description = "Hour (0-23, in timezone) when the endpoint is deleted on service days."
  default     = 20
}

variable "days" {
  type        = string
  description = "Day-of-week field of the schedules' cron expressions, such as MON-FRI."
  default     = "MON-FRI"
}

variable "timezone" {
  type        = string
  description = "IANA time zone of start_hour and stop_hour; Europe/London follows British Summer Time."
  default     = "Europe/London"
}

variable "enabled" {
  type        = bool
  description = "Run the schedules. False leaves the endpoint as it is day and night, which costs about twice as much."
  default     = true
}

variable "log_retention_days" {
  type        = number
  description = "Days CloudWatch Logs keeps the function's logs."
  default     = 30
}
