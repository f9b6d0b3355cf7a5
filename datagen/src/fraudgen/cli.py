"""Command line: ``fraudgen generate``, ``audit``, ``describe``, ``validate-config``.

A configuration error or an invalid option prints one line that names the key or
the option and exits with status 2.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from fraudgen import __version__
from fraudgen.audit import audit_path
from fraudgen.catalogue import CHANNELS
from fraudgen.config import MAX_DAYS, ConfigError, GeneratorConfig, load_config
from fraudgen.descriptions import COLUMN_DESCRIPTIONS, SCENARIO_DESCRIPTIONS
from fraudgen.frame import SCHEMA
from fraudgen.generator import DEFAULT_BATCH_ROWS
from fraudgen.legit import DEFAULT_SHARD_CARDS
from fraudgen.presets import preset_names
from fraudgen.writer import generate_to_path

CONFIG_ERROR_EXIT = 2
LEAK_FOUND_EXIT = 1
STORAGE_ERROR_EXIT = 1
MAX_SEED = 2**63 - 1

app = typer.Typer(
    help="Generate synthetic card payments with labelled fraud scenarios.",
    no_args_is_help=True,
    add_completion=False,
)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(CONFIG_ERROR_EXIT)


def _load(
    config: Path | None, overrides: dict[str, Any], *, preset: str | None = None
) -> GeneratorConfig:
    try:
        return load_config(config, overrides=overrides, preset=preset)
    except ConfigError as error:
        _fail(str(error))
        raise AssertionError("unreachable") from error


def _parse_int(
    option: str, text: str | None, *, minimum: int, maximum: int
) -> int | None:
    """Parse an integer option, failing with one line that names the option."""
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not minimum <= value <= maximum:
        _fail(f"{option} must be an integer from {minimum} to {maximum}, got {text!r}")
    return value


@app.command()
def generate(
    out: Annotated[
        str,
        typer.Option(
            "--out",
            help="Output folder: a local path or an fsspec URL such as "
            "s3://bucket/raw (S3 endpoint from AWS_ENDPOINT_URL).",
        ),
    ],
    config: Annotated[
        Path | None,
        typer.Option("--config", help="YAML config merged over the defaults."),
    ] = None,
    rows: Annotated[
        str | None,
        typer.Option(
            "--rows",
            metavar="N",
            help="Target number of transactions; overrides "
            "rows or cards of the config.",
        ),
    ] = None,
    days: Annotated[
        str | None,
        typer.Option(
            "--days",
            metavar="D",
            help="Span in days; overrides days or end of the config.",
        ),
    ] = None,
    seed: Annotated[
        str | None,
        typer.Option("--seed", metavar="S", help="Seed of every random draw."),
    ] = None,
    csv: Annotated[
        bool,
        typer.Option("--csv", help="Also write csv/dt=YYYY-MM-DD/part-0.csv."),
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a non-empty output folder.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", help="Hide the progress bar.")
    ] = False,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            metavar="NAME",
            help="Shipped preset merged over the defaults and under --config "
            f"({', '.join(preset_names())}).",
        ),
    ] = None,
    threads: Annotated[
        str | None,
        typer.Option(
            "--threads",
            metavar="N",
            help="Worker threads; default: the cores, at most 4. "
            "Does not change the output.",
        ),
    ] = None,
    shard_cards: Annotated[
        str | None,
        typer.Option(
            "--shard-cards",
            metavar="N",
            help=f"Cards drawn per step within a day (default {DEFAULT_SHARD_CARDS:,}"
            "). Does not change the output.",
        ),
    ] = None,
    batch_rows: Annotated[
        str | None,
        typer.Option(
            "--batch-rows",
            metavar="N",
            help="Expected rows of the days one thread holds at a time (default "
            f"{DEFAULT_BATCH_ROWS:,}). Does not change the output.",
        ),
    ] = None,
) -> None:
    """Write daily parquet partitions and manifest.json to OUT."""
    work = {
        "threads": _parse_int("--threads", threads, minimum=1, maximum=256),
        "shard_cards": _parse_int(
            "--shard-cards", shard_cards, minimum=1, maximum=10**9
        ),
        "batch_rows": _parse_int("--batch-rows", batch_rows, minimum=1, maximum=10**9),
    }
    work = {key: value for key, value in work.items() if value is not None}
    options = {
        "rows": _parse_int("--rows", rows, minimum=1, maximum=2_000_000_000),
        "days": _parse_int("--days", days, minimum=1, maximum=MAX_DAYS),
        "seed": _parse_int("--seed", seed, minimum=0, maximum=MAX_SEED),
        "write_csv": True if csv else None,
    }
    overrides = {key: value for key, value in options.items() if value is not None}
    settings = _load(config, overrides, preset=preset)
    _configure_logging()
    try:
        manifest = _generate_with_progress(
            settings, out, overwrite=overwrite, quiet=quiet, work=work
        )
    except (FileExistsError, FileNotFoundError, ValueError) as error:
        _fail(str(error))
        return
    except OSError as error:
        typer.echo(f"error: writing to {out} failed: {error}", err=True)
        raise typer.Exit(STORAGE_ERROR_EXIT) from None
    typer.echo(
        f"wrote {manifest.rows} transactions ({manifest.frauds} fraudulent, "
        f"{manifest.fraud_rate:.4%}) over {manifest.days} days to {out}"
    )


def _configure_logging() -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


def _generate_with_progress(
    settings: GeneratorConfig,
    out: str,
    *,
    overwrite: bool,
    quiet: bool,
    work: dict[str, int],
) -> Any:
    if quiet:
        return generate_to_path(settings, out, overwrite=overwrite, **work)
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        task = progress.add_task("generating days", total=settings.n_days)
        return generate_to_path(
            settings,
            out,
            overwrite=overwrite,
            progress=lambda done: progress.update(task, completed=done),
            **work,
        )


@app.command()
def audit(
    data: Annotated[
        str,
        typer.Argument(
            metavar="DIR",
            help="Data set folder written by generate, a local path or an fsspec URL.",
        ),
    ],
    json_file: Annotated[
        Path | None,
        typer.Option("--json", metavar="FILE", help="Also write the report as JSON."),
    ] = None,
    threshold: Annotated[
        float,
        typer.Option(
            "--threshold", help="AUC above which an id-like column is a leak."
        ),
    ] = 0.55,
    folds: Annotated[
        int,
        typer.Option("--folds", help="Folds of the out-of-fold target rate."),
    ] = 5,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the fold assignment.")
    ] = 0,
) -> None:
    """Report how well each column alone separates fraud (ROC AUC).

    Exits with status 1 when an id or timestamp column has an AUC above the
    threshold, 0 otherwise, and 2 when DIR cannot be read.
    """
    _configure_logging()
    try:
        report = audit_path(data, threshold=threshold, folds=folds, seed=seed)
    except (FileNotFoundError, ValueError) as error:
        _fail(str(error))
        return
    typer.echo(report.format_table())
    if json_file is not None:
        json_file.write_text(report.to_json(), encoding="utf-8")
    if report.leaks:
        raise typer.Exit(LEAK_FOUND_EXIT)


@app.command()
def describe(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of text.")
    ] = False,
) -> None:
    """Print the output schema and the fraud scenario catalogue."""
    columns = [
        {"name": name, "dtype": str(dtype), "description": COLUMN_DESCRIPTIONS[name]}
        for name, dtype in SCHEMA.items()
    ]
    scenarios = [
        {"name": name, "description": text}
        for name, text in SCENARIO_DESCRIPTIONS.items()
    ]
    if as_json:
        payload = {"version": __version__, "columns": columns, "scenarios": scenarios}
        typer.echo(json.dumps(payload, indent=2))
        return
    typer.echo(f"fraudgen {__version__}: columns")
    for column in columns:
        typer.echo(
            f"  {column['name']:<20} {column['dtype']:<24} {column['description']}"
        )
    typer.echo(f"channels: {', '.join(CHANNELS)}")
    typer.echo("fraud scenarios (fraud_scenario column)")
    for scenario in scenarios:
        typer.echo(f"  {scenario['name']:<22} {scenario['description']}")


@app.command("validate-config")
def validate_config(
    config: Annotated[Path, typer.Argument(help="YAML config file to check.")],
) -> None:
    """Check a config file against the schema and print its summary."""
    settings = _load(config, {})
    size = (
        f"rows={settings.rows}"
        if settings.rows is not None
        else f"cards={settings.cards}"
    )
    typer.echo(
        f"valid: {size}, {settings.n_days} days from {settings.start}, "
        f"fraud_rate={settings.fraud_rate}, seed={settings.seed}, "
        f"config_hash={settings.config_hash()[:12]}"
    )


def main() -> None:
    """Run the command-line application."""
    app()
