"""What the infra and deploy workflows run, and that real-account jobs are opt-in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

WORKFLOWS = Path(__file__).resolve().parents[2] / ".github" / "workflows"
OPT_IN = "vars.AWS_DEPLOY_ENABLED == 'true'"


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    return workflow.get("on", workflow.get(True))


def runs(job: dict[str, Any]) -> list[str]:
    return [step.get("run", "") for step in job["steps"]]


def test_infra_checks_on_pull_request() -> None:
    workflow = load("infra.yml")
    jobs = workflow["jobs"]
    terraform = runs(jobs["terraform"])

    assert "pull_request" in triggers(workflow)
    assert workflow["permissions"] == {"contents": "read"}
    assert terraform == [
        "",
        "",
        "terraform fmt -check -recursive",
        "terraform init -backend=false -input=false",
        "terraform validate",
        "terraform test",
    ]
    checkov = runs(jobs["checkov"])[-1]
    assert "checkov==3.3.30" in checkov
    assert "--config-file infra/.checkov.yaml" in checkov
    assert runs(jobs["actionlint"])[-1] == "actionlint -no-color"


def test_checkov_config_offline() -> None:
    config = yaml.safe_load(
        (WORKFLOWS.parents[1] / "infra" / ".checkov.yaml").read_text(encoding="utf-8")
    )

    assert config["skip-download"] is True
    assert config["framework"] == ["terraform"]
    assert "skip-check" not in config


def test_every_checkov_skip_has_reason() -> None:
    terraform = WORKFLOWS.parents[1] / "infra" / "terraform"
    skips = [
        line.strip()
        for path in terraform.rglob("*.tf")
        for line in path.read_text(encoding="utf-8").splitlines()
        if "checkov:skip" in line
    ]

    assert len(skips) == 29
    for skip in skips:
        _, check, reason = skip.split(":", 2)
        assert check.startswith("skip=CKV"), skip
        assert len(reason.split()) >= 6, skip


@pytest.mark.parametrize(
    "job", ["plan", "apply", "release", "cost-report", "teardown-non-production"]
)
def test_deploy_jobs_opt_in(job: str) -> None:
    condition = load("deploy.yml")["jobs"][job]["if"]

    assert condition.startswith(OPT_IN)


def test_deploy_uses_oidc_not_keys() -> None:
    workflow = load("deploy.yml")
    text = (WORKFLOWS / "deploy.yml").read_text(encoding="utf-8")

    assert workflow["permissions"] == {"contents": "read", "id-token": "write"}
    assert "aws-access-key-id" not in text
    assert "secrets." not in text
    for job in workflow["jobs"].values():
        credentials = [
            s for s in job["steps"] if "configure-aws-credentials" in s.get("uses", "")
        ]
        assert len(credentials) == 1
        assert set(credentials[0]["with"]) == {"role-to-assume", "aws-region"}


def test_apply_and_release_need_approval() -> None:
    jobs = load("deploy.yml")["jobs"]

    assert jobs["apply"]["environment"] == "production"
    assert jobs["apply"]["needs"] == "plan"
    assert jobs["release"]["environment"] == "production"
    assert "environment" not in jobs["plan"]


def test_scheduled_teardown_non_production_only() -> None:
    workflow = load("deploy.yml")
    job = workflow["jobs"]["teardown-non-production"]

    assert job["strategy"]["matrix"]["environment"] == ["dev", "staging"]
    assert "vars.AWS_SCHEDULED_TEARDOWN == 'true'" in job["if"]
    schedules = [entry["cron"] for entry in triggers(workflow)["schedule"]]
    assert schedules == ["0 7 * * 1", "0 21 * * 5"]
    assert "github.event.schedule == '0 21 * * 5'" in job["if"]
    assert "--all" not in runs(job)[-1]
