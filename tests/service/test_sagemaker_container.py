"""The SageMaker container contract: ``bento/serve`` with a packaged model.

SageMaker starts the container as ``docker run IMAGE serve``, and the image's
``serve`` is bento/serve. Here that script starts the service on the served
workspace with a packaged model folder, as the image does. It listens on a free port
of 127.0.0.1 (``PORT`` and ``--host``) instead of 0.0.0.0:8080, because port 8080 may
be taken on a shared machine and the tests listen on loopback only. The unit tests at
the end check that the script and ``cardfraud serve --sagemaker`` default to
0.0.0.0:8080.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cardfraud.cli import app
from cardfraud.paths import project_root
from cardfraud.served_model import package_model
from cardfraud.serving import DECISIONS
from tests.service.conftest import (
    RunningService,
    ServedWorkspace,
    last_moment,
    launch_service,
    replay_transactions,
    service_environment,
)
from tests.support.servers import free_port

SERVE_SCRIPT = project_root() / "bento" / "serve"
TAG = "sagemaker"
CSV_HEADER = "transaction_id,timestamp,card_id,merchant_id,amount_minor,currency"
# Maximum wait, in seconds, for a decision to reach the audit log.
EXPLANATION_WAIT_S = 10


@pytest.fixture(scope="module")
def packaged_model(
    served_workspace: ServedWorkspace, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    """The champion packaged as bento/package_model.py packs it for the image."""
    folder = tmp_path_factory.mktemp("packaged") / "model"
    serving = package_model(
        tracking_uri=served_workspace.ws.tracking_uri(),
        model_name=served_workspace.params.registry.model_name,
        alias="champion",
        params_path=served_workspace.params_path,
        destination=folder,
    )
    return folder, serving


@pytest.fixture(scope="module")
def container(
    served_workspace: ServedWorkspace,
    packaged_model: tuple[Path, dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningService]:
    """bento/serve with the image's settings, on a free port of 127.0.0.1.

    The image sets no explanation token and no parameters file: explanations on
    /invocations are authorised by IAM, and the parameters come from the packaged
    folder.
    """
    folder = tmp_path_factory.mktemp("sagemaker-container")
    port = free_port()
    env = service_environment(
        served_workspace,
        folder,
        {
            "PORT": str(port),
            "CARDFRAUD_MODEL_DIR": str(packaged_model[0]),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        },
    )
    for name in (
        "CARDFRAUD_PARAMS",
        "CARDFRAUD_EXPLANATION_TOKEN",
        "CARDFRAUD_INVOCATIONS_AUTH",
        "CARDFRAUD_BENTO_DIR",
    ):
        env.pop(name, None)
    command = [str(SERVE_SCRIPT), "--host", "127.0.0.1", "--workers", "2"]
    service = launch_service(command, env, folder, port=port)
    yield service
    service.stop()


def transaction(served: ServedWorkspace, name: str) -> dict[str, Any]:
    """Return a replay transaction under a new id, card and merchant."""
    body = dict(replay_transactions(served)[0])
    body["transaction_id"] = f"{TAG}-{name}"
    body["card_id"] = f"{TAG}-{body['card_id']}"
    body["merchant_id"] = f"{TAG}-{body['merchant_id']}"
    return body


def csv_rows(served: ServedWorkspace, count: int) -> list[str]:
    """Return ``count`` CSV rows of one new card at the same merchant."""
    moment = (last_moment(served) + timedelta(days=6)).isoformat()
    return [
        f"{TAG}-csv-{i},{moment},{TAG}-card-csv,{TAG}-merchant-csv,{2000 + i},EUR"
        for i in range(count)
    ]


def explain(service: RunningService, transaction_id: str) -> httpx.Response:
    """Ask /invocations for an explanation, without a token, retrying while 404.

    The worker that handles the request may not be the one that scored, and that
    one writes the decision to the audit log within its flush interval. Retries
    stop after ``EXPLANATION_WAIT_S`` seconds.
    """
    body = {"explanation": {"transaction_id": transaction_id}}
    deadline = time.monotonic() + EXPLANATION_WAIT_S
    while True:
        response = service.post("/invocations", json=body)
        if response.status_code != 404 or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def test_container_ping_returns_200(container):
    response = httpx.get(f"{container.url}/ping", timeout=10)
    assert response.status_code == 200


def test_container_serves_packaged_model(container, packaged_model):
    folder, serving = packaged_model
    body = httpx.get(f"{container.url}/readyz", timeout=10).json()
    assert body["status"] == "ready"
    assert body["model"]["version"] == serving["version"]
    assert body["model"]["source"] == str(folder)


def test_container_invocations_json_scores(container, served_workspace, packaged_model):
    body = transaction(served_workspace, "json")
    response = container.post("/invocations", json={"transaction": body})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["transaction_id"] == body["transaction_id"]
    assert 0.0 <= result["score"] <= 1.0
    assert result["decision"] in DECISIONS
    assert result["model_version"] == packaged_model[1]["version"]


def test_container_invocations_csv_scores_rows_in_order(container, served_workspace):
    rows = csv_rows(served_workspace, 3)
    response = container.post(
        "/invocations",
        content="\n".join([CSV_HEADER, *rows]) + "\n",
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [item["transaction_id"] for item in results] == [
        f"{TAG}-csv-0",
        f"{TAG}-csv-1",
        f"{TAG}-csv-2",
    ]
    assert all(item["decision"] in DECISIONS for item in results)


@pytest.mark.parametrize("content_type", ["text/csv", "application/csv; charset=utf-8"])
def test_container_single_csv_row_returns_results(
    container, served_workspace, content_type
):
    moment = (last_moment(served_workspace) + timedelta(days=7)).isoformat()
    suffix = content_type.split("/")[0]
    row = f"{TAG}-one-{suffix},{moment},{TAG}-card-one,{TAG}-merchant-one,1500,EUR"
    response = container.post(
        "/invocations",
        content=f"{CSV_HEADER}\n{row}\n",
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [item["transaction_id"] for item in results] == [f"{TAG}-one-{suffix}"]


def test_container_invocations_bad_csv_names_field(container, served_workspace):
    moment = (last_moment(served_workspace) + timedelta(days=6)).isoformat()
    response = container.post(
        "/invocations",
        content=f"{CSV_HEADER}\n{TAG}-bad,{moment},c,m,twelve,EUR\n",
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 422
    assert response.json()["problems"][0]["field"] == "row 1.amount_minor"


@pytest.mark.parametrize("amount", ["1_000", "\u0661\u0660\u0660\u0660", " 12 "])
def test_container_csv_rejects_loose_numbers(container, served_workspace, amount):
    moment = (last_moment(served_workspace) + timedelta(days=6)).isoformat()
    response = container.post(
        "/invocations",
        content=f"{CSV_HEADER}\n{TAG}-loose,{moment},c,m,{amount},EUR\n",
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 422, amount
    assert response.json()["problems"][0]["field"] == "row 1.amount_minor"


def test_container_explanation_needs_no_token(container, served_workspace):
    body = transaction(served_workspace, "explained")
    scored = container.post("/invocations", json={"transaction": body})
    explained = explain(container, body["transaction_id"])
    assert scored.status_code == 200
    assert explained.status_code == 200, explained.text
    assert explained.json()["transaction_id"] == body["transaction_id"]
    assert explained.json()["decision"] == scored.json()["decision"]


# Unit level: the defaults that the tests above override.


def write_recording_cardfraud(folder: Path) -> Path:
    """Write a ``cardfraud`` stand-in that prints its arguments and bento folder."""
    script = folder / "cardfraud"
    script.write_text(
        "#!/bin/sh\n"
        'printf "%s\\n" "$@"\n'
        'printf "CARDFRAUD_BENTO_DIR=%s\\n" "$CARDFRAUD_BENTO_DIR"\n',
        encoding="utf-8",
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def run_serve_script(tmp_path: Path, env: dict[str, str], *args: str) -> list[str]:
    """Run bento/serve with the stand-in ``cardfraud`` and return what it printed."""
    write_recording_cardfraud(tmp_path)
    path = f"{tmp_path}{os.pathsep}{os.environ['PATH']}"
    done = subprocess.run(
        [str(SERVE_SCRIPT), *args],
        env={"PATH": path, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


def test_serve_script_defaults_to_port_8080(tmp_path):
    printed = run_serve_script(tmp_path, {})
    assert printed == [
        "serve",
        "--sagemaker",
        "--port",
        "8080",
        f"CARDFRAUD_BENTO_DIR={SERVE_SCRIPT.parent}",
    ]


def test_serve_script_passes_port_and_arguments(tmp_path):
    printed = run_serve_script(tmp_path, {"PORT": "9123"}, "--host", "127.0.0.1")
    assert printed[:6] == [
        "serve",
        "--sagemaker",
        "--port",
        "9123",
        "--host",
        "127.0.0.1",
    ]


def bentoml_arguments(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    *options: str,
    settings: dict[str, str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """Run ``cardfraud serve`` up to its exec and return BentoML's argv and env.

    The packaged model folder needs only serving.json for the command's checks.
    """
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "serving.json").write_text(json.dumps({"version": "1"}))
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CARDFRAUD_", "BENTOML_", "MLFLOW_TRACKING"))
    }
    environment["CARDFRAUD_MODEL_DIR"] = str(model_dir)
    environment["BENTOML_HOME"] = str(tmp_path / "bentoml")
    environment.update(settings or {})
    monkeypatch.setattr(os, "environ", environment)
    started: list[list[str]] = []

    def record_exec(path: str, argv: list[str]) -> None:
        started.append(argv)
        raise SystemExit(0)

    monkeypatch.setattr(os, "execv", record_exec)
    result = CliRunner().invoke(app, ["serve", *options])
    assert result.exit_code == 0, result.output
    assert len(started) == 1
    return started[0], environment


def option_value(argv: list[str], option: str) -> str:
    return argv[argv.index(option) + 1]


def test_cli_sagemaker_listens_on_all_addresses_port_8080(monkeypatch, tmp_path):
    argv, environment = bentoml_arguments(monkeypatch, tmp_path, "--sagemaker")
    assert option_value(argv, "--port") == "8080"
    assert option_value(argv, "--host") == "0.0.0.0"
    assert environment["CARDFRAUD_INVOCATIONS_AUTH"] == "iam"


def test_cli_default_listens_on_loopback_port_3000(monkeypatch, tmp_path):
    argv, environment = bentoml_arguments(monkeypatch, tmp_path)
    assert option_value(argv, "--port") == "3000"
    assert option_value(argv, "--host") == "127.0.0.1"
    assert "CARDFRAUD_INVOCATIONS_AUTH" not in environment


def test_cli_gives_service_own_bentoml_home(monkeypatch, tmp_path):
    _, environment = bentoml_arguments(monkeypatch, tmp_path)
    home = Path(environment["BENTOML_HOME"])
    assert home == tmp_path / "bentoml" / "cardfraud-serve" / str(os.getpid())
    assert home.is_dir()


def test_cli_workers_option_sets_environment(monkeypatch, tmp_path):
    _, environment = bentoml_arguments(monkeypatch, tmp_path, "--workers", "3")
    assert environment["CARDFRAUD_WORKERS"] == "3"


def test_cli_keeps_workers_from_environment(monkeypatch, tmp_path):
    _, environment = bentoml_arguments(
        monkeypatch, tmp_path, settings={"CARDFRAUD_WORKERS": "1"}
    )
    assert environment["CARDFRAUD_WORKERS"] == "1"
