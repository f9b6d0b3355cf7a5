# `terraform test` with mocked providers: plans the root module with its defaults and
# checks the names and limits that the deploy command and `make cost` rely on. No
# credentials are needed and nothing is created.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }

  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }

  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
}

mock_provider "archive" {}

run "plan_with_defaults" {
  command = plan

  assert {
    condition     = output.rollback_alarm_names == ["cardfraud-dev-scorer-p99-latency", "cardfraud-dev-scorer-5xx"]
    error_message = "The rollback alarms must carry the names the deploy command passes to UpdateEndpoint."
  }

  assert {
    condition     = output.budget_limit.amount == "62.50" && output.budget_limit.currency == "USD"
    error_message = "The default budget must be 50 GBP converted at 1.25 USD per GBP."
  }

  assert {
    condition     = output.audit_table_name == "cardfraud-dev-audit"
    error_message = "The audit table must be named <project>-<environment>-audit."
  }
}

run "latency_threshold_in_microseconds" {
  command = plan

  variables {
    latency_p99_threshold_ms = 200
  }

  assert {
    condition     = module.monitoring.rollback_alarm_names[0] == "cardfraud-dev-scorer-p99-latency"
    error_message = "The latency alarm name must not depend on its threshold."
  }
}
