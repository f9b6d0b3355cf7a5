"""Command line: ``fraudgen generate``, ``describe`` and ``validate-config``.

A configuration error prints one line that names the key and exits with status 2.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from fraudgen import __version__
from fraudgen.catalogue import CHANNELS
from fraudgen.config import ConfigError, GeneratorConfig, load_config
from fraudgen.descriptions import COLUMN_DESCRIPTIONS, SCENARIO_DESCRIPTIONS
from fraudgen.frame import SCHEMA
from fraudgen.writer import generate_to_path

CONFIG_ERROR_EXIT = 2

app = typer.Typer(
    help="Generate synthetic card payments with labelled fraud scenarios.",
    no_args_is_help=True,
    add_completion=False,
)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(CONFIG_ERROR_EXIT)


def _load(config: Path | None, overrides: dict[str, Any]) -> GeneratorConfig:
    try:
        return load_config(config, overrides=overrides)
    except ConfigError as error:
        _fail(str(error))
        raise AssertionError("unreachable") from error


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", help="Output folder for the data set.")],
    config: Annotated[
        Path | None,
        typer.Option("--config", help="YAML config merged over the defaults."),
    ] = None,
    rows: Annotated[
        int | None, typer.Option("--rows", help="Target number of transactions.")
    ] = None,
    days: Annotated[int | None, typer.Option("--days", help="Span in days.")] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of every random draw.")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a non-empty output folder.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", help="Hide the progress bar.")
    ] = False,
) -> None:
    """Write daily parquet partitions and manifest.json to OUT."""
    overrides = {
        key: value
        for key, value in (("rows", rows), ("days", days), ("seed", seed))
        if value is not None
    }
    settings = _load(config, overrides)
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        manifest = _generate_with_progress(
            settings, out, overwrite=overwrite, quiet=quiet
        )
    except FileExistsError as error:
        _fail(str(error))
        return
    typer.echo(
        f"wrote {manifest.rows} transactions ({manifest.frauds} fraudulent, "
        f"{manifest.fraud_rate:.4%}) over {manifest.days} days to {out}"
    )


def _generate_with_progress(
    settings: GeneratorConfig, out: Path, *, overwrite: bool, quiet: bool
) -> Any:
    from rich.progress import Progress

    with Progress(disable=quiet, transient=True) as progress:
        task = progress.add_task("generating days", total=settings.n_days)
        return generate_to_path(
            settings,
            out,
            overwrite=overwrite,
            progress=lambda done: progress.update(task, completed=done),
        )


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
