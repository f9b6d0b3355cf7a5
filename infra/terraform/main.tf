locals {
  name_prefix = "${var.project}-${var.environment}"

  # Names shared with the deploy command (infra/deploy.yaml): it creates the
  # endpoint, its models and configurations under these names, and Terraform
  # refers to them without managing them.
  endpoint_name         = "${local.name_prefix}-scorer"
  live_config_parameter = "/${local.name_prefix}/scorer/live-endpoint-config"

  # AWS Budgets takes the limit in the account's currency, so a GBP cap on an
  # account that reports in another currency is converted here.
  budget_limit_amount = (
    var.budget_currency == "GBP"
    ? var.monthly_budget_gbp
    : var.monthly_budget_gbp * var.gbp_to_budget_currency_rate
  )
}

module "data_lake" {
  source = "./modules/data_lake"

  name_prefix   = local.name_prefix
  force_destroy = var.data_lake_force_destroy
}

module "budget" {
  source = "./modules/budget"

  name_prefix              = local.name_prefix
  limit_amount             = local.budget_limit_amount
  limit_unit               = var.budget_currency
  notification_email       = var.notification_email
  use_customer_managed_key = var.sns_use_customer_managed_key
}

module "platform_key" {
  source = "./modules/platform_key"

  name_prefix = local.name_prefix
  aws_region  = var.aws_region
}

module "audit_table" {
  source = "./modules/audit_table"

  name_prefix         = local.name_prefix
  kms_key_arn         = module.platform_key.key_arn
  deletion_protection = var.audit_deletion_protection
}

module "ecr" {
  source = "./modules/ecr"

  name_prefix  = local.name_prefix
  kms_key_arn  = module.platform_key.key_arn
  images_kept  = var.images_kept
  force_delete = var.ecr_force_delete
}

module "monitoring" {
  source = "./modules/monitoring"

  endpoint_name            = local.endpoint_name
  latency_p99_threshold_ms = var.latency_p99_threshold_ms
  alarm_topic_arn          = module.budget.sns_topic_arn
  kms_key_arn              = module.platform_key.key_arn
  log_retention_days       = var.log_retention_days
}

module "api" {
  source = "./modules/api"

  name_prefix        = local.name_prefix
  aws_region         = var.aws_region
  endpoint_name      = local.endpoint_name
  router_source_file = "${path.root}/../../src/cardfraud/deploy/router.py"
  token_sha256       = var.api_token_sha256
  kms_key_arn        = module.platform_key.key_arn
  log_retention_days = var.log_retention_days
}

module "scheduler" {
  source = "./modules/scheduler"

  name_prefix           = local.name_prefix
  aws_region            = var.aws_region
  endpoint_name         = local.endpoint_name
  live_config_parameter = local.live_config_parameter
  scheduler_source_file = "${path.root}/../../src/cardfraud/deploy/scheduler.py"
  kms_key_arn           = module.platform_key.key_arn
  start_hour            = var.service_start_hour
  stop_hour             = var.service_stop_hour
  days                  = var.service_days
  timezone              = var.service_timezone
  enabled               = var.overnight_stop_enabled
  log_retention_days    = var.log_retention_days
}

module "iam" {
  source = "./modules/iam"

  name_prefix                 = local.name_prefix
  aws_region                  = var.aws_region
  endpoint_name               = local.endpoint_name
  ecr_repository_arn          = module.ecr.repository_arn
  endpoint_log_group_arn      = module.monitoring.endpoint_log_group_arn
  data_lake_bucket_arn        = module.data_lake.bucket_arn
  feast_online_tables         = var.feast_online_tables
  audit_table_arn             = module.audit_table.table_arn
  kms_key_arn                 = module.platform_key.key_arn
  rollback_alarm_names        = module.monitoring.rollback_alarm_names
  live_config_parameter       = local.live_config_parameter
  github_repository           = var.github_repository
  github_environment          = var.github_environment
  create_github_oidc_provider = var.create_github_oidc_provider
}
