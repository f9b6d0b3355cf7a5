"""The ``cardfraud`` command line: pipeline stages, notebooks, site and service."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer

from cardfraud.deploy.cli import app as deploy_app
from cardfraud.paths import project_root, resolve_workspace

app = typer.Typer(
    help="Card-fraud platform: run stages, build the site, serve the champion.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
notebook_app = typer.Typer(help="Executed notebooks and the Jupyter kernel.")
site_app = typer.Typer(help="The Quarto case-study site.")
app.add_typer(notebook_app, name="notebook")
app.add_typer(site_app, name="site")
app.add_typer(deploy_app, name="deploy")

logger = logging.getLogger("cardfraud")

WorkspaceOption = Annotated[
    str | None,
    typer.Option(
        help="Output folder: '.' is the project root (the pipeline's own outputs); "
        "omitted, the smoke workspace ($CARDFRAUD_SMOKE_DIR or .smoke/)."
    ),
]
ParamsOption = Annotated[
    Path | None,
    typer.Option(help="Parameters file; default params.yaml at the project root."),
]


@app.callback()
def configure(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug logs.")
    ] = False,
) -> None:
    """Configure logging once for every subcommand."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _params_path(params: Path | None) -> Path:
    return params if params is not None else project_root() / "params.yaml"


WORKER_INTEGER_SETTINGS = (
    "CARDFRAUD_WORKERS",
    "CARDFRAUD_MAX_BATCH",
    "CARDFRAUD_MAX_CONCURRENCY",
)
"""Settings that ``bento/service.py`` reads as positive integers."""
LOG_FORMATS = ("json", "text")
"""Values of ``CARDFRAUD_LOG_FORMAT``."""


def worker_setting_problems(environ: Mapping[str, str]) -> list[str]:
    """Return a sentence for each invalid setting that the service's workers read.

    The workers read these when they start, so a bad value found there would make
    BentoML restart them without end.
    """
    problems = []
    for name in WORKER_INTEGER_SETTINGS:
        text = environ.get(name)
        if text is not None and not (
            text.isascii() and text.isdigit() and int(text) >= 1
        ):
            problems.append(f"{name}={text!r} is invalid; set a whole number >= 1")
    timeout = environ.get("CARDFRAUD_REQUEST_TIMEOUT_S")
    if timeout is not None:
        try:
            seconds = float(timeout)
        except ValueError:
            seconds = float("nan")
        if not (math.isfinite(seconds) and seconds > 0):
            problems.append(
                f"CARDFRAUD_REQUEST_TIMEOUT_S={timeout!r} is invalid; set a "
                "number of seconds > 0"
            )
    from cardfraud.service_app import INVOCATION_AUTH

    choice_settings = {
        "CARDFRAUD_INVOCATIONS_AUTH": INVOCATION_AUTH,
        "CARDFRAUD_LOG_FORMAT": LOG_FORMATS,
    }
    for name, choices in choice_settings.items():
        text = environ.get(name)
        if text is not None and text not in choices:
            problems.append(
                f"{name}={text!r} is invalid; set one of {', '.join(choices)}"
            )
    return problems


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


@app.command()
def stage(
    name: Annotated[str, typer.Argument(help="Stage name, e.g. generate or train.")],
    workspace: WorkspaceOption = None,
    params: ParamsOption = None,
) -> None:
    """Run one pipeline stage in process and print its summary as JSON."""
    from cardfraud.params import ParamsError, load_params
    from cardfraud.pipeline import run_stage

    try:
        summary = run_stage(
            name, resolve_workspace(workspace), load_params(_params_path(params))
        )
    except (KeyError, ParamsError) as error:
        raise _fail(
            str(error.args[0] if isinstance(error, KeyError) else error)
        ) from None
    typer.echo(json.dumps(summary, indent=2, sort_keys=True, default=str))


@app.command()
def pipeline(
    workspace: WorkspaceOption = None,
    params: ParamsOption = None,
    until: Annotated[str | None, typer.Option(help="Stop after this stage.")] = None,
) -> None:
    """Run every stage in process, without papermill or DVC, and print the summaries."""
    from cardfraud.params import ParamsError
    from cardfraud.pipeline import run_pipeline

    try:
        summaries = run_pipeline(
            resolve_workspace(workspace), _params_path(params), until=until
        )
    except (KeyError, ParamsError) as error:
        raise _fail(
            str(error.args[0] if isinstance(error, KeyError) else error)
        ) from None
    typer.echo(json.dumps(summaries, indent=2, sort_keys=True, default=str))


@app.command("check-params")
def check_params(params: ParamsOption = None) -> None:
    """Validate every section and key of the parameters file."""
    from cardfraud.params import ParamsError, load_params

    path = _params_path(params)
    try:
        load_params(path)
    except ParamsError as error:
        raise _fail(str(error)) from None
    typer.echo(f"{path}: every section and key is valid")


@app.command()
def ingest(
    source: Annotated[
        Path, typer.Option(help="External transaction table: CSV or parquet.")
    ],
    mapping: Annotated[
        Path, typer.Option(help="YAML mapping of its columns to the canonical schema.")
    ],
    out: Annotated[
        Path, typer.Option(help="Output folder for the daily parquet partitions.")
    ],
    overwrite: Annotated[
        bool, typer.Option(help="Replace the output folder if it is not empty.")
    ] = False,
) -> None:
    """Map an external table into daily parquet partitions and print the manifest.

    Exits with code 2 and a one-line message on an invalid table or mapping, leaving
    the output folder as it was.
    """
    from cardfraud.ingest import IngestError, ingest_table

    try:
        manifest = ingest_table(source, mapping, out, overwrite=overwrite)
    except IngestError as error:
        raise _fail(str(error)) from None
    summary = {key: value for key, value in manifest.items() if key != "schema"}
    typer.echo(json.dumps(summary, indent=2, sort_keys=True))


@app.command("example-request")
def example_request(
    workspace: Annotated[
        str,
        typer.Option(
            help="Workspace whose generated data to read; default '.', the "
            "pipeline's own outputs. A relative path is taken from the project "
            "root, not the current folder."
        ),
    ] = ".",
    fraud: Annotated[
        bool, typer.Option(help="Pick a transaction labelled as fraud.")
    ] = False,
) -> None:
    """Print a scoring request (JSON) from the latest day of data that has one."""
    import polars as pl

    from cardfraud.data import list_partitions
    from cardfraud.schema import LABEL_COLUMNS

    ws = resolve_workspace(workspace)
    try:
        partitions = list_partitions(ws.raw_dir)
    except FileNotFoundError as error:
        raise _fail(str(error)) from None
    frame = pl.DataFrame()
    for partition in reversed(partitions):
        frame = pl.read_parquet(partition).filter(pl.col("is_fraud") == fraud)
        if not frame.is_empty():
            break
    if frame.is_empty():
        kind = "fraudulent" if fraud else "legitimate"
        raise _fail(f"no {kind} transaction in {ws.raw_dir}")
    labels = [name for name in LABEL_COLUMNS if name in frame.columns]
    row = frame.drop(labels).row(0, named=True)
    row["timestamp"] = row["timestamp"].isoformat()
    body = {key: value for key, value in row.items() if value is not None}
    typer.echo(json.dumps(body, indent=2))


@notebook_app.command("strip")
def notebook_strip(
    paths: Annotated[list[Path], typer.Argument(help="Executed notebooks to rewrite.")],
) -> None:
    """Remove timestamps, durations and execution counts from executed notebooks."""
    from cardfraud.notebooks import strip_file

    for path in paths:
        if not path.is_file():
            raise _fail(f"notebook not found: {path}")
        strip_file(path)


@notebook_app.command("smoke")
def notebook_smoke(
    out: Annotated[Path, typer.Option(help="Folder for the executed notebooks.")],
    workspace: Annotated[
        Path | None,
        typer.Option(help="Smoke workspace for their outputs; default a temp folder."),
    ] = None,
) -> None:
    """Execute every stage notebook at its smoke-size defaults, in pipeline order."""
    import tempfile

    from cardfraud.smoke import execute_notebooks

    folder = workspace or Path(tempfile.mkdtemp(prefix="cardfraud-smoke-"))
    for path in execute_notebooks(out.resolve(), workspace_dir=folder.resolve()):
        typer.echo(str(path))


@notebook_app.command("install-kernel")
def notebook_install_kernel(
    user: Annotated[
        bool, typer.Option(help="Install for the user, not the venv.")
    ] = False,
) -> None:
    """Register the Jupyter kernel 'cardfraud' for JupyterLab, papermill and nbval."""
    from cardfraud.notebooks import install_kernel

    typer.echo(install_kernel(user=user))


@site_app.command("build")
def site_build(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("_site"),
    quarto: Annotated[
        bool,
        typer.Option(
            help="Use quarto when it is on PATH; --no-quarto forces nbconvert."
        ),
    ] = True,
) -> None:
    """Render the site with quarto, or export the executed notebooks to HTML."""
    from cardfraud.site import build_site

    root = project_root()
    out_dir = out if out.is_absolute() else root / out
    index = build_site(root, out_dir, use_quarto=None if quarto else False)
    typer.echo(str(index))


@site_app.command("check")
def site_check(
    executed_dir: Annotated[
        Path | None,
        typer.Option(help="Folder of executed notebooks to resolve embeds."),
    ] = None,
) -> None:
    """Check that every page, listing and embed of the Quarto project resolves."""
    from cardfraud.site import check_quarto_project

    problems = check_quarto_project(project_root(), executed_dir=executed_dir)
    for problem in problems:
        typer.echo(problem, err=True)
    if problems:
        raise typer.Exit(code=1)
    typer.echo("site: every page, listing and embed resolves")


@app.command()
def bench(
    params: ParamsOption = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            help="Run only this section; repeat for several: generator, features, "
            "stages, service or monitor. Default: all."
        ),
    ] = None,
    monitor_rows: Annotated[
        int, typer.Option(min=1, help="Audit records of the monitor benchmark.")
    ] = 1_000_000,
    load_rate: Annotated[
        float, typer.Option(min=1, help="Requests per second of the service run.")
    ] = 200,
    load_seconds: Annotated[
        float, typer.Option(min=1, help="Seconds of the service run at load-rate.")
    ] = 60,
    step_seconds: Annotated[
        float, typer.Option(min=1, help="Seconds of each stepped service rate.")
    ] = 20,
    flavour: Annotated[
        list[str] | None,
        typer.Option(
            help="Model family to serve in the service benchmark; repeat for "
            "several. Default: every family in train.models."
        ),
    ] = None,
) -> None:
    """Time every pipeline stage in process at the size params.yaml sets.

    Also times the feature build of 1,000,000 transactions and the online read plus
    update of single transactions on SQLite and Redis, and load-tests the scoring
    service and a bare BentoML service with an open-loop generator on this
    machine, and times the monitor over an audit log of --monitor-rows decisions.
    Everything runs on temporary workspaces, so the pipeline's own
    outputs and MLflow store stay untouched. Prints markdown tables for
    docs/benchmarks.md, and exits with 1 when the service misses a latency bound or
    loses an audit record.
    """
    from cardfraud.bench import (
        features_and_online_table,
        generator_table,
        machine_description,
        markdown_table,
        time_stages,
    )
    from cardfraud.params import load_params

    known = ("generator", "features", "stages", "service", "monitor")
    sections = set(only or known)
    unknown = sorted(sections - set(known))
    if unknown:
        raise _fail(f"unknown --only section(s) {unknown}; use some of {known}")
    if flavour:
        from cardfraud.tuning import FAMILIES

        unknown_flavours = sorted(set(flavour) - set(FAMILIES))
        if unknown_flavours:
            raise _fail(f"unknown --flavour {unknown_flavours}; use some of {FAMILIES}")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    params_path = _params_path(params)
    typer.echo(f"machine: {machine_description()}")
    typer.echo(f"params: {params_path}\n")
    if "generator" in sections:
        typer.echo("## Generator, one process per size\n")
        seed = load_params(params_path).generate.seed
        typer.echo(generator_table([1_000_000, 10_000_000], seed=seed))
    if "features" in sections:
        typer.echo("\n## Feature build and online path, in process\n")
        typer.echo(features_and_online_table(params_path, rows=1_000_000))
    if "stages" in sections:
        typer.echo("\n## Pipeline stages, in process\n")
        typer.echo(markdown_table(time_stages(params_path)))
    if "service" in sections:
        from cardfraud.loadtest import run_service_benchmark, service_tables

        typer.echo("\n## Scoring service under open-loop load, 2 workers\n")
        result = run_service_benchmark(
            params_path,
            rate=load_rate,
            seconds=load_seconds,
            step_seconds=step_seconds,
            flavours=flavour,
        )
        typer.echo(service_tables(result))
        failures = result.failures()
        for failure in failures:
            typer.echo(f"bound missed: {failure}", err=True)
        if failures:
            raise typer.Exit(code=1)
    if "monitor" in sections:
        from cardfraud.bench import monitor_table, time_monitor

        typer.echo("\n## Monitor over the audit log, in process\n")
        seed = load_params(params_path).generate.seed
        typer.echo(
            monitor_table(time_monitor(params_path, rows=monitor_rows, seed=seed))
        )


@app.command("migrate-audit")
def migrate_audit(
    path: Annotated[Path, typer.Argument(help="SQLite audit log, changed in place.")],
) -> None:
    """Fill the monitor rows of an audit log that an older version wrote.

    Holds the file's write lock until it finishes (about 2.5 minutes per million
    records), so stop the service first. Otherwise its writer retries and then
    appends its batches to the fallback file. The records are left unchanged.
    """
    import sqlite3

    from cardfraud.audit import SCHEMA_VERSION, AuditSchemaError, migrate_audit_file

    try:
        filled = migrate_audit_file(path)
    except (FileNotFoundError, AuditSchemaError, sqlite3.Error) as error:
        raise _fail(f"{path}: {error}") from None
    typer.echo(
        f"{path}: filled {filled} monitor row(s); schema version {SCHEMA_VERSION}"
    )


@app.command()
def monitor(
    since: Annotated[
        str, typer.Option(help="First event day monitored, YYYY-MM-DD (UTC).")
    ],
    until: Annotated[
        str | None,
        typer.Option(help="Last event day monitored, YYYY-MM-DD; default today."),
    ] = None,
    audit_db: Annotated[
        Path | None,
        typer.Option(help="SQLite audit log; default state/audit.db of the workspace."),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            help="Parquet or CSV of fraud reports (transaction_id, "
            "label_available_at); default the workspace's raw data."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder of monitor-live.json and monitor-live.prom."),
    ] = None,
    cloudwatch_region: Annotated[
        str | None,
        typer.Option(help="Publish the figures to CloudWatch in this region."),
    ] = None,
    cloudwatch_endpoint: Annotated[
        str | None,
        typer.Option(help="CloudWatch endpoint other than AWS's, e.g. moto's URL."),
    ] = None,
    post_summary: Annotated[
        bool,
        typer.Option(
            help="Post the summary message to $CARDFRAUD_CHAT_WEBHOOK_URL (the "
            "weekly schedule sets this)."
        ),
    ] = False,
    workspace: WorkspaceOption = None,
    params: ParamsOption = None,
) -> None:
    """Monitor the live audit log since a day: drift, decisions, matured performance.

    Writes the summary and the Prometheus text file, prints the alerts, and exits
    with 1 when an alert fired.
    """
    from datetime import date

    from cardfraud.monitoring.live import LiveRequest, run_live_monitor

    webhook = os.environ.get("CARDFRAUD_CHAT_WEBHOOK_URL") if post_summary else None
    if post_summary and not webhook:
        raise _fail("--post-summary needs CARDFRAUD_CHAT_WEBHOOK_URL; set the URL")
    try:
        first = date.fromisoformat(since)
        last = date.fromisoformat(until) if until else None
    except ValueError as error:
        raise _fail(f"--since/--until: {error}; write days as YYYY-MM-DD") from None
    request = LiveRequest(
        workspace=resolve_workspace(workspace),
        params_path=_params_path(params),
        since=first,
        until=last,
        audit_db=audit_db,
        labels=labels,
        out_dir=out,
        cloudwatch_region=cloudwatch_region,
        cloudwatch_endpoint=cloudwatch_endpoint,
        chat_webhook_url=webhook,
    )
    try:
        _report, summary = run_live_monitor(request)
    except (FileNotFoundError, ValueError, LookupError) as error:
        raise _fail(str(error)) from None
    for alert in summary["alerts"]:
        typer.echo(
            f"alert {alert['kind']} {alert['subject']}: {alert['value']} "
            f"(threshold {alert['threshold']}) since {alert['first_day']}"
        )
    typer.echo(json.dumps(summary["alert_counts"], sort_keys=True))
    if summary["alerts"]:
        raise typer.Exit(code=1)


@app.command()
def serve(
    port: Annotated[
        int | None, typer.Option(help="TCP port; default 3000, 8080 with --sagemaker.")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1, help="Worker processes; default $CARDFRAUD_WORKERS, else 2."
        ),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(
            help="Address to listen on; default 127.0.0.1, 0.0.0.0 with --sagemaker."
        ),
    ] = None,
    sagemaker: Annotated[
        bool,
        typer.Option(
            "--sagemaker",
            help="Serve the SageMaker container contract: 0.0.0.0:8080, GET /ping, "
            "POST /invocations, explanations authorised by the endpoint's IAM, and "
            "an EMF metrics line per scoring request on stdout (CARDFRAUD_EMF=1).",
        ),
    ] = False,
) -> None:
    """Serve the champion with BentoML: /score, /explanations, /invocations.

    The settings and the model are checked first, so a missing champion or an
    invalid parameters file stops here with one message instead of workers that
    restart. The alias is resolved once here and the version number passed to every
    worker (CARDFRAUD_MODEL_VERSION), so all workers serve the same version.
    BentoML runs with BENTOML_HOME set to ``$BENTOML_HOME/cardfraud-serve/<pid>``, so
    another service starting on the machine cannot delete this one's metrics.
    """
    from cardfraud.params import ParamsError
    from cardfraud.registry import find_alias_version, make_client
    from cardfraud.service_emf import emf_enabled
    from cardfraud.serving import ServiceSettings

    if sagemaker:
        os.environ.setdefault("CARDFRAUD_INVOCATIONS_AUTH", "iam")
        os.environ.setdefault("CARDFRAUD_EMF", "1")
    if workers is not None:
        os.environ["CARDFRAUD_WORKERS"] = str(workers)
    problems = worker_setting_problems(os.environ)
    if problems:
        raise _fail("; ".join(problems))
    try:
        settings = ServiceSettings.from_environment()
        emf_enabled()
    except (ParamsError, ValueError) as error:
        raise _fail(str(error)) from None
    if settings.model_dir is not None:
        if not (settings.model_dir / "serving.json").is_file():
            raise _fail(
                f"CARDFRAUD_MODEL_DIR={settings.model_dir} has no serving.json; "
                "build it with bento/package_model.py"
            )
        logger.info("serving the packaged model in %s", settings.model_dir)
    elif settings.model_version is None:
        client = make_client(settings.tracking_uri)
        version = find_alias_version(
            client, model_name=settings.model_name, alias=settings.model_alias
        )
        if version is None:
            raise _fail(
                f"model {settings.model_name!r} has no alias "
                f"{settings.model_alias!r} in {settings.tracking_uri}; run "
                "`make pipeline` first"
            )
        os.environ["CARDFRAUD_MODEL_VERSION"] = str(version.version)
        logger.info(
            "alias %s of %s points to version %s; every worker serves it",
            settings.model_alias,
            settings.model_name,
            version.version,
        )

    bentoml = shutil.which("bentoml") or str(Path(sys.executable).with_name("bentoml"))
    _isolate_bentoml_home()
    root = project_root()
    os.environ.setdefault("CARDFRAUD_ROOT", str(root))
    bento_dir = Path(os.environ.get("CARDFRAUD_BENTO_DIR", root / "bento"))
    args = [
        bentoml,
        "serve",
        "service:FraudScorer",
        "--working-dir",
        str(bento_dir),
        "--host",
        host or ("0.0.0.0" if sagemaker else "127.0.0.1"),
        "--port",
        str(port or (8080 if sagemaker else 3000)),
    ]
    logger.info("starting %s", " ".join(args))
    os.execv(bentoml, args)


def _isolate_bentoml_home() -> None:
    """Point BENTOML_HOME at a home of this process's own.

    Every BentoML service that starts empties the Prometheus multiprocess folder of
    its home, so services sharing one would delete each other's worker metrics
    (see ``cardfraud.service_metrics``).
    """
    from cardfraud.service_metrics import default_bentoml_home, isolated_bentoml_home

    base = default_bentoml_home()
    try:
        home = isolated_bentoml_home(base, os.getpid())
    except OSError as error:
        raise _fail(
            f"failed to create this service's BentoML home under BENTOML_HOME={base}: "
            f"{error}; set BENTOML_HOME to a writable folder"
        ) from None
    os.environ["BENTOML_HOME"] = str(home)
    logger.info("BentoML home of this service: %s", home)


def main() -> None:
    """Entry point for ``python -m cardfraud``."""
    app()
