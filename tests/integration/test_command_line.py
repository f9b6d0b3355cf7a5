"""The cardfraud command line: parameter checks, example requests, serve pre-flight."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from cardfraud.cli import app
from cardfraud.paths import project_root
from cardfraud.schema import build_request_model

runner = CliRunner()


def test_check_params_accepts_project_file():
    result = runner.invoke(app, ["check-params"])
    assert result.exit_code == 0
    assert "every section and key is valid" in result.output


def test_check_params_names_misspelt_section(tmp_path):
    params = yaml.safe_load((project_root() / "params.yaml").read_text())
    params["trian"] = {"n_estimators": 5}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    result = runner.invoke(app, ["check-params", "--params", str(path)])
    assert result.exit_code == 2
    assert "unknown section(s) ['trian']" in result.output


def test_example_request_is_valid_request(smoke_workspace):
    result = runner.invoke(
        app, ["example-request", "--workspace", str(smoke_workspace.root), "--fraud"]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    parsed = build_request_model().model_validate(body)
    assert parsed.transaction_id == body["transaction_id"]
    assert "is_fraud" not in body


def test_example_request_without_data_fails(tmp_path):
    result = runner.invoke(app, ["example-request", "--workspace", str(tmp_path)])
    assert result.exit_code == 2
    assert "not found" in result.output


def fail_on_exec(*args):
    raise AssertionError(f"serve started a server: {args}")


def test_serve_without_champion_stops(tmp_path, monkeypatch):
    monkeypatch.setenv("CARDFRAUD_WORKSPACE", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr("os.execv", fail_on_exec)
    result = runner.invoke(app, ["serve", "--port", "1"])
    assert result.exit_code == 2
    assert "has no alias 'champion'" in result.output


def test_bench_rejects_unknown_flavour():
    result = runner.invoke(app, ["bench", "--only", "service", "--flavour", "catboost"])
    assert result.exit_code == 2
    assert "unknown --flavour ['catboost']" in result.output
    assert "xgboost" in result.output


def test_bench_rejects_unknown_section():
    result = runner.invoke(app, ["bench", "--only", "services"])
    assert result.exit_code == 2
    assert "unknown --only section(s) ['services']" in result.output


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CARDFRAUD_INVOCATIONS_AUTH", "bogus", "set one of token, iam"),
        ("CARDFRAUD_MAX_BATCH", "2.5", "set a whole number >= 1"),
        ("CARDFRAUD_MAX_CONCURRENCY", "abc", "set a whole number >= 1"),
        ("CARDFRAUD_WORKERS", "0", "set a whole number >= 1"),
        ("CARDFRAUD_REQUEST_TIMEOUT_S", "-1", "set a number of seconds > 0"),
        ("CARDFRAUD_REQUEST_TIMEOUT_S", "nan", "set a number of seconds > 0"),
        ("CARDFRAUD_LOG_FORMAT", "xml", "set one of json, text"),
    ],
)
def test_serve_rejects_invalid_worker_setting(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2
    assert f"{name}={value!r} is invalid" in result.output
    assert message in result.output


def test_worker_settings_accept_defaults_and_valid_values():
    from cardfraud.cli import worker_setting_problems

    assert worker_setting_problems({}) == []
    valid = {
        "CARDFRAUD_WORKERS": "4",
        "CARDFRAUD_MAX_BATCH": "100",
        "CARDFRAUD_MAX_CONCURRENCY": "64",
        "CARDFRAUD_REQUEST_TIMEOUT_S": "2.5",
        "CARDFRAUD_INVOCATIONS_AUTH": "iam",
        "CARDFRAUD_LOG_FORMAT": "text",
    }
    assert worker_setting_problems(valid) == []
