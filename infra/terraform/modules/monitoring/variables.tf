variable "endpoint_name" {
  type        = string
  description = "Name of the SageMaker endpoint that the deploy command creates, such as cardfraud-dev-scorer."
}

variable "variant_name" {
  type        = string
  description = "Production variant name of the endpoint, the same in every endpoint configuration."
  default     = "AllTraffic"
}

variable "latency_p99_threshold_ms" {
  type        = number
  description = "p99 model latency in milliseconds above which the latency alarm fires and an update rolls back."
  default     = 150

  validation {
    condition     = var.latency_p99_threshold_ms > 0
    error_message = "latency_p99_threshold_ms must be greater than 0."
  }
}

variable "alarm_topic_arn" {
  type        = string
  description = "ARN of the SNS topic that receives alarm state changes."
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the KMS key that encrypts the endpoint's log group."
}

variable "log_retention_days" {
  type        = number
  description = "Days CloudWatch Logs keeps the endpoint's logs."
  default     = 30
}

variable "service_namespace" {
  type        = string
  description = "CloudWatch namespace of the service's Embedded Metric Format log lines."
  default     = "CardFraud/Service"
}

variable "monitor_namespace" {
  type        = string
  description = "CloudWatch namespace the scheduled monitor publishes its figures to."
  default     = "CardFraud"
}

variable "psi_alert_threshold" {
  type        = number
  description = "Population stability index drawn as the drift alert line; keep equal to monitor.psi_alert in params.yaml."
  default     = 0.25
}
