"""`make cost`: the monthly estimate from the committed price table."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cardfraud.cli import app
from cardfraud.deploy.cost import (
    CostError,
    estimate,
    load_price_table,
    service_hours,
    terraform_dir,
    terraform_resource_counts,
    terraform_variables,
    unpriced_resource_types,
)
from cardfraud.deploy.settings import load_settings

PRICES = Path(__file__).resolve().parents[2] / "infra" / "pricing" / "eu-west-2.yaml"
COMPONENTS = [
    "sagemaker endpoint",
    "blue/green second fleet",
    "api gateway",
    "lambda",
    "audit table",
    "feature tables (Feast)",
    "data lake",
    "image repository",
    "kms keys",
    "alarms",
    "dashboards",
    "custom metrics",
    "logs",
    "cost explorer report",
]


def default_estimate(**variable_overrides: object):
    variables = terraform_variables(terraform_dir())
    variables.update(variable_overrides)
    return estimate(
        settings=load_settings(),
        table=load_price_table(PRICES),
        variables=variables,
        resource_counts=terraform_resource_counts(terraform_dir()),
    )


def test_price_table_states_region_date_source_rate() -> None:
    table = load_price_table(PRICES)

    assert table["region"] == "eu-west-2"
    assert str(table["date"]) == "2026-12-04"
    assert table["currency"] == "USD"
    assert 0 < table["gbp_per_usd"] < 1
    assert all(url.startswith("https://aws.amazon.com/") for url in table["source"])


def test_default_estimate_within_50_pounds() -> None:
    result = default_estimate()

    assert [line.component for line in result.lines] == COMPONENTS
    assert all(line.usd > 0 for line in result.lines)
    assert result.budget_gbp == 50
    assert result.total_gbp <= 50
    assert result.within_budget
    assert result.total_gbp == pytest.approx(42.70, abs=0.01)


def test_endpoint_hours_follow_schedule() -> None:
    variables = terraform_variables(terraform_dir())

    assert service_hours(variables) == pytest.approx(12 * 5 * 52 / 12)
    assert service_hours({**variables, "service_days": "MON-SUN"}) == pytest.approx(
        12 * 7 * 52 / 12
    )
    assert service_hours({**variables, "overnight_stop_enabled": False}) == 730


def test_blue_green_prices_doubled_fleet() -> None:
    result = default_estimate()
    line = next(x for x in result.lines if x.component == "blue/green second fleet")

    # 8 deploys x 2 instances x (10 min provisioning + 10 + 10 min baking) x 0.065
    assert line.usd == pytest.approx(8 * 2 * 0.5 * 0.065)


def test_always_on_endpoint_exceeds_budget() -> None:
    result = default_estimate(overnight_stop_enabled=False)

    assert not result.within_budget
    assert result.total_gbp > 50


def test_cost_command_exits_1_over_budget(tmp_path: Path) -> None:
    tfvars = tmp_path / "always-on.tfvars"
    tfvars.write_text("overnight_stop_enabled = false\n", encoding="utf-8")

    result = CliRunner().invoke(app, ["deploy", "cost", "--tfvars", str(tfvars)])

    assert result.exit_code == 1
    assert "exceeds the budget of £50.00" in result.output
    assert "| sagemaker endpoint | 2 x ml.t2.medium x 730 h |" in result.output


def test_cost_command_default_prints_components() -> None:
    result = CliRunner().invoke(app, ["deploy", "cost"])

    assert result.exit_code == 0, result.output
    for component in COMPONENTS:
        assert f"| {component} |" in result.output
    assert "| **total** | | **53.37** | **42.70** |" in result.output


def test_every_terraform_resource_type_priced() -> None:
    counts = terraform_resource_counts(terraform_dir())

    assert unpriced_resource_types(counts, load_price_table(PRICES)) == set()
    assert counts["aws_kms_key"] == 2
    assert counts["aws_cloudwatch_metric_alarm"] == 2


def test_unpriced_resource_type_fails(tmp_path: Path) -> None:
    table = yaml.safe_load(PRICES.read_text(encoding="utf-8"))
    del table["billable_resource_types"]["aws_dynamodb_table"]
    broken = tmp_path / "prices.yaml"
    broken.write_text(yaml.safe_dump(table), encoding="utf-8")

    with pytest.raises(CostError, match="aws_dynamodb_table"):
        estimate(
            settings=load_settings(),
            table=load_price_table(broken),
            variables=terraform_variables(terraform_dir()),
            resource_counts=terraform_resource_counts(terraform_dir()),
        )


def test_new_resource_type_without_row_fails() -> None:
    counts = {**terraform_resource_counts(terraform_dir()), "aws_nat_gateway": 1}

    assert unpriced_resource_types(counts, load_price_table(PRICES)) == {
        "aws_nat_gateway"
    }


def test_unknown_instance_type_fails() -> None:
    settings = load_settings(overrides={"endpoint": {"instance_type": "ml.g5.xlarge"}})

    with pytest.raises(CostError, match=r"ml\.g5\.xlarge has no price"):
        estimate(
            settings=settings,
            table=load_price_table(PRICES),
            variables=terraform_variables(terraform_dir()),
            resource_counts=terraform_resource_counts(terraform_dir()),
        )


def test_single_instance_rejected_for_canary() -> None:
    with pytest.raises(ValueError, match="leaves no room for a canary"):
        load_settings(overrides={"endpoint": {"instance_count": 1}})
