"""MLflow tracking, model registration, champion/challenger promotion and loading.

A candidate model is logged as one MLflow run with its parameters, metrics, plot data,
feature list, lineage, data manifest hash and metadata, with one nested run per Optuna
trial. It is registered as a new version of the registered model and given the alias
``champion`` or ``challenger``. Scoring code resolves the champion
through the alias lookup itself, never through a search, because registry searches can
return versions without their aliases.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow
import xgboost as xgb
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.tracking import MlflowClient

from cardfraud.training import (
    META_FILE,
    MODEL_FILES,
    TrainedModel,
    load_booster,
    model_from_meta,
)

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
COMPARED_METRIC = "test_average_precision"
MODEL_ARTIFACT = "model"
_INVALID_METRIC_CHARACTERS = re.compile(r"[^A-Za-z0-9_\-. /]")


@dataclass(frozen=True)
class PromotionDecision:
    """The alias a candidate receives and why."""

    alias: str
    reason: str


@dataclass(frozen=True)
class LoggedCandidate:
    """Location of a logged candidate: its MLflow run and model URI."""

    run_id: str
    model_uri: str


@dataclass(frozen=True)
class ChampionModel(TrainedModel):
    """A registered model version loaded through an alias.

    Attributes:
        version: Registered model version, e.g. ``"3"``.
        alias: The alias that resolved to the version.
        run_id: MLflow run that logged the version.
    """

    version: str = ""
    alias: str = CHAMPION
    run_id: str = ""


def decide_promotion(
    *, candidate_score: float, champion_score: float | None, margin: float
) -> PromotionDecision:
    """Decide between champion and challenger on test average precision.

    Args:
        candidate_score: The candidate's test average precision.
        champion_score: The champion's average precision on the same test rows, or
            None when there is no champion.
        margin: Gain over the champion that the candidate must exceed.
    """
    if champion_score is None:
        return PromotionDecision(CHAMPION, "no champion was registered")
    gain = candidate_score - champion_score
    if gain > margin:
        return PromotionDecision(
            CHAMPION,
            f"average precision {candidate_score:.6f} beats the champion's "
            f"{champion_score:.6f} by {gain:.6f}, more than the margin {margin:.6f}",
        )
    return PromotionDecision(
        CHALLENGER,
        f"average precision {candidate_score:.6f} does not beat the champion's "
        f"{champion_score:.6f} by more than the margin {margin:.6f} (gain {gain:.6f})",
    )


def make_client(tracking_uri: str) -> MlflowClient:
    """Return a client whose tracking store and registry are both ``tracking_uri``."""
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def find_alias_version(client: MlflowClient, *, model_name: str, alias: str) -> Any:
    """Return the ModelVersion that ``alias`` points to, or None when it is unset."""
    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException as error:
        missing = ErrorCode.Name(RESOURCE_DOES_NOT_EXIST)
        if error.error_code == missing:
            return None
        raise


def stored_score(client: MlflowClient, version: Any) -> float | None:
    """Return a version's recorded test average precision, or None when absent.

    The version tag is read first and the logging run's metric second.
    """
    tagged = version.tags.get(COMPARED_METRIC)
    if tagged is not None:
        return float(tagged)
    if not version.run_id:
        return None
    run_metrics = client.get_run(version.run_id).data.metrics
    value = run_metrics.get(COMPARED_METRIC)
    return None if value is None else float(value)


def ensure_experiment(
    client: MlflowClient, *, name: str, artifact_location: str | None
) -> str:
    """Return the id of experiment ``name``, creating it when missing.

    Args:
        artifact_location: Artifact root of a new experiment, e.g. a ``file://`` URI;
            None lets the tracking server choose. An existing experiment keeps its own.
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    logger.info("creating MLflow experiment %r at %s", name, artifact_location)
    return client.create_experiment(name, artifact_location=artifact_location)


def git_commit(folder: Path) -> str | None:
    """Return the commit checked out in the repository containing ``folder``, if any."""
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        logger.info("git commit unavailable: %s", error)
        return None
    commit = completed.stdout.strip()
    return commit if completed.returncode == 0 and commit else None


def flatten_metrics(values: dict[str, Any], *, prefix: str = "") -> dict[str, float]:
    """Flatten nested numeric values into MLflow metric names joined by ``_``.

    Booleans and non-numeric values are skipped. Characters that MLflow rejects in
    metric names become ``_``.
    """
    flat: dict[str, float] = {}
    for key, value in values.items():
        name = _INVALID_METRIC_CHARACTERS.sub("_", f"{prefix}{key}")
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, prefix=f"{name}_"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


@contextmanager
def using_tracking_uri(tracking_uri: str) -> Iterator[None]:
    """Point MLflow's process-wide tracking and registry URIs at a store for a block.

    ``mlflow.set_tracking_uri`` also exports ``MLFLOW_TRACKING_URI``, which would make
    every later ``Workspace.tracking_uri()`` in the process, and every subprocess,
    use this store. The previous values are restored on exit.
    """
    previous_tracking = os.environ.get("MLFLOW_TRACKING_URI")
    previous_registry = os.environ.get("MLFLOW_REGISTRY_URI")
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous_tracking)
        mlflow.set_registry_uri(previous_registry)
        if previous_registry is None:
            os.environ.pop("MLFLOW_REGISTRY_URI", None)


@dataclass(frozen=True)
class RunRecords:
    """What a candidate run logs besides the model.

    Attributes:
        metrics: Flat metric names and values.
        lineage_path: ``lineage.json`` of the features, logged as is.
        tags: Extra tags, such as the data manifest hash.
        trials: Optuna trials, each logged as a nested run (``tuning.json`` entries).
        artifacts: Files logged under ``artifact_path`` folders, by folder name.
    """

    metrics: dict[str, float]
    lineage_path: Path | None = None
    tags: dict[str, str] = field(default_factory=dict)
    trials: list[dict[str, Any]] = field(default_factory=list)
    artifacts: dict[str, list[Path]] = field(default_factory=dict)


def log_candidate(
    model: TrainedModel,
    *,
    tracking_uri: str,
    experiment_name: str,
    records: RunRecords,
    artifact_location: str | None = None,
) -> LoggedCandidate:
    """Log one MLflow run with the candidate model and everything that describes it.

    The run contains the training parameters, hyperparameters and thresholds as
    params, the metrics, the feature list, ``model_meta.json``, the lineage file, the
    artifacts, and tags with the data fingerprint, the git commit and
    ``records.tags``. Every trial becomes a nested run with its hyperparameters and
    per-fold validation average precision. The model is logged with its library's
    MLflow flavour, with ``model_meta.json`` among its extra files.

    MLflow's process-wide URIs point at ``tracking_uri`` only while the run is logged.
    """
    experiment_id = ensure_experiment(
        make_client(tracking_uri),
        name=experiment_name,
        artifact_location=artifact_location,
    )
    with (
        using_tracking_uri(tracking_uri),
        tempfile.TemporaryDirectory(prefix="cardfraud-meta-") as folder,
    ):
        meta_path = Path(folder) / META_FILE
        meta_path.write_text(json.dumps(model.meta, indent=2, sort_keys=True))
        with mlflow.start_run(experiment_id=experiment_id) as run:
            log_run_details(model, records=records)
            model_info = log_model_artifact(model, meta_path=meta_path)
            for trial in records.trials:
                log_trial(trial, experiment_id=experiment_id)
    logger.info("logged run %s with model %s", run.info.run_id, model_info.model_uri)
    return LoggedCandidate(run_id=run.info.run_id, model_uri=model_info.model_uri)


def log_run_details(model: TrainedModel, *, records: RunRecords) -> None:
    """Log params, metrics, tags and JSON artifacts to the active run."""
    params = flatten_params(model.meta.get("params", {}))
    params.update(
        flatten_params(model.meta.get("hyperparameters", {}), prefix="hyper_")
    )
    params.update({f"threshold_{k}": v for k, v in model.thresholds.items()})
    params["feature_count"] = len(model.feature_columns)
    params["flavour"] = model.flavour
    mlflow.log_params(params)
    mlflow.log_metrics(records.metrics)
    tags = {
        "flavour": model.flavour,
        "data_fingerprint": model.meta.get("data_fingerprint", ""),
        **records.tags,
    }
    # Outside a git checkout (an unpacked source archive) the tag says so.
    tags["git_commit"] = git_commit(Path(__file__).resolve().parent) or "unknown"
    mlflow.set_tags(tags)
    mlflow.log_dict({"feature_columns": model.feature_columns}, "feature_columns.json")
    mlflow.log_dict(model.meta, META_FILE)
    lineage_path = records.lineage_path
    if lineage_path is not None and lineage_path.is_file():
        mlflow.log_artifact(str(lineage_path))
    else:
        logger.warning(
            "lineage file %s not found; the run has no lineage", lineage_path
        )
    for folder, paths in sorted(records.artifacts.items()):
        for path in paths:
            if path.is_file():
                mlflow.log_artifact(str(path), artifact_path=folder)


def log_trial(trial: dict[str, Any], *, experiment_id: str) -> None:
    """Log one Optuna trial as a run nested in the active run."""
    name = f"{trial['family']}-trial-{trial['number']}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=name, nested=True):
        mlflow.log_params({"family": trial["family"], **trial["params"]})
        scores = {
            f"fold_{fold}_average_precision": value
            for fold, value in trial["fold_average_precision"].items()
        }
        if trial.get("value") is not None:
            scores["mean_validation_average_precision"] = float(trial["value"])
        mlflow.log_metrics(scores)
        mlflow.set_tags({"trial_state": trial["state"], "trial": str(trial["number"])})


def flatten_params(values: dict[str, Any], *, prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts into MLflow param names joined by ``_``.

    Lists and other values are kept as they are; MLflow stores them as strings.
    """
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten_params(value, prefix=f"{prefix}{key}_"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def log_run_files(
    *, tracking_uri: str, run_id: str, paths: list[Path], artifact_path: str
) -> None:
    """Add files to a finished run, such as the promotion report and model card."""
    client = make_client(tracking_uri)
    for path in paths:
        client.log_artifact(run_id, str(path), artifact_path=artifact_path)


def log_model_artifact(model: TrainedModel, *, meta_path: Path) -> Any:
    """Log the booster with its MLflow flavour and return the ModelInfo.

    Pip requirements are given explicitly, which skips MLflow's requirement
    inference: that inference loads the model in a subprocess and takes seconds.
    """
    metadata = {"data_fingerprint": model.meta.get("data_fingerprint", "")}
    if model.flavour == "xgboost":
        return mlflow.xgboost.log_model(
            model.booster,
            name=MODEL_ARTIFACT,
            model_format="ubj",
            pip_requirements=[f"xgboost=={xgb.__version__}"],
            extra_files=[str(meta_path)],
            metadata=metadata,
        )
    return mlflow.lightgbm.log_model(
        model.booster,
        name=MODEL_ARTIFACT,
        pip_requirements=[f"lightgbm=={lgb.__version__}"],
        extra_files=[str(meta_path)],
        metadata=metadata,
    )


def register_candidate(
    candidate: LoggedCandidate,
    *,
    tracking_uri: str,
    model_name: str,
    test_score: float,
    data_fingerprint: str,
) -> str:
    """Register the logged model as a new version and return its version number."""
    with using_tracking_uri(tracking_uri):
        version = mlflow.register_model(
            candidate.model_uri,
            model_name,
            tags={
                COMPARED_METRIC: f"{test_score:.6f}",
                "data_fingerprint": data_fingerprint,
            },
        )
    logger.info("registered %s version %s", model_name, version.version)
    return str(version.version)


def set_alias(
    client: MlflowClient, *, model_name: str, version: str, alias: str
) -> None:
    """Point ``alias`` at ``version``, moving it from any other version."""
    client.set_registered_model_alias(model_name, alias, version)
    logger.info("alias %r of %s now points to version %s", alias, model_name, version)


def load_champion(
    *, tracking_uri: str, model_name: str, alias: str = CHAMPION
) -> ChampionModel:
    """Load the model version that ``alias`` points to now.

    The version is resolved with ``get_model_version_by_alias``; its files are
    downloaded to a temporary folder, loaded into memory, and the folder is removed.
    The download location comes from a client bound to ``tracking_uri``: in MLflow
    3.17 a ``models:/<name>/<version>`` URI is resolved against the process-wide
    registry URI even when another one is passed.

    Raises:
        LookupError: The registered model or the alias does not exist.
    """
    client = make_client(tracking_uri)
    version = find_alias_version(client, model_name=model_name, alias=alias)
    if version is None:
        raise LookupError(
            f"registered model {model_name!r} has no alias {alias!r} at "
            f"{tracking_uri}; run the register stage first"
        )
    with tempfile.TemporaryDirectory(prefix="cardfraud-champion-") as folder:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=client.get_model_version_download_uri(
                model_name, version.version
            ),
            dst_path=folder,
            tracking_uri=tracking_uri,
        )
        model = read_model_folder(Path(local))
    logger.info("loaded %s version %s via alias %r", model_name, version.version, alias)
    return ChampionModel(
        flavour=model.flavour,
        booster=model.booster,
        feature_columns=model.feature_columns,
        thresholds=model.thresholds,
        meta=model.meta,
        version=str(version.version),
        alias=alias,
        run_id=version.run_id or "",
    )


def read_model_folder(folder: Path) -> TrainedModel:
    """Load a downloaded MLflow model folder: the MLmodel file, booster and metadata.

    Raises:
        FileNotFoundError: The folder lacks ``model_meta.json`` among its extra files.
    """
    mlmodel = Model.load(str(folder))
    flavour = next((name for name in MODEL_FILES if name in mlmodel.flavors), None)
    if flavour is None:
        raise ValueError(
            f"model at {folder} has flavours {sorted(mlmodel.flavors)}, expected one "
            f"of {sorted(MODEL_FILES)}; register a model from the train stage"
        )
    meta_path = folder / "extra_files" / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"{meta_path} not found; the model was logged without its metadata, so "
            "register it again with the register stage"
        )
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    data_path = folder / mlmodel.flavors[flavour]["data"]
    return model_from_meta(load_booster(data_path, flavour=flavour), meta)
