locals {
  name_prefix = "${var.project}-${var.environment}"

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
