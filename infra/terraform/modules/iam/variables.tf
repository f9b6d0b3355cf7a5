variable "name_prefix" {
  type        = string
  description = "Prefix of the role names, such as cardfraud-dev."
}

variable "aws_region" {
  type        = string
  description = "Region of the endpoint, the tables and the parameter that the roles reach."
}

variable "endpoint_name" {
  type        = string
  description = "Name of the SageMaker endpoint; models and endpoint configurations are named <endpoint_name>-v<version>-<time>."
}

variable "ecr_repository_arn" {
  type        = string
  description = "ARN of the scorer image repository."
}

variable "endpoint_log_group_arn" {
  type        = string
  description = "ARN of the endpoint's CloudWatch log group."
}

variable "data_lake_bucket_arn" {
  type        = string
  description = "ARN of the data lake bucket that holds model artefacts and the Feast registry."
}

variable "model_prefix" {
  type        = string
  description = "Key prefix of model artefacts in the data lake bucket, ending in a slash."
  default     = "models/"
}

variable "feast_registry_key" {
  type        = string
  description = "Key of the Feast registry object in the data lake bucket."
  default     = "feast/registry.db"
}

variable "feast_online_tables" {
  type        = list(string)
  description = "DynamoDB tables that `feast apply` creates for the online feature views, named <Feast project>.<feature view>."
}

variable "audit_table_arn" {
  type        = string
  description = "ARN of the decision audit table."
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the platform KMS key that encrypts the audit table and the images."
}

variable "rollback_alarm_names" {
  type        = list(string)
  description = "Names of the CloudWatch alarms that the deploy checks before an update."
}

variable "live_config_parameter" {
  type        = string
  description = "Name of the SSM parameter that records the live endpoint configuration."
}

variable "github_repository" {
  type        = string
  description = "GitHub repository, as owner/name, whose deploy workflow may assume the deploy role."
}

variable "github_environment" {
  type        = string
  description = "GitHub environment whose jobs may assume the deploy role; protect it with required reviewers."
}

variable "create_github_oidc_provider" {
  type        = bool
  description = "Create the account's GitHub Actions OIDC provider. False uses the one that already exists."
  default     = true
}
