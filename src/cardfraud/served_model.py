"""The model a scoring service serves: loading, pinning and packaging.

A service loads one registered model version for its whole life. The version comes
from the MLflow registry, pinned by number or resolved once from an alias, or from a
packaged model folder (as inside a Bento container, where no MLflow server exists).
Besides the booster it loads the model's lineage (feature to view, source and
transformation) and its model card, both optional.

A packaged model folder contains:

* ``model/``: the MLflow model folder (``MLmodel``, the booster file,
  ``extra_files/model_meta.json``);
* ``serving.json``: the registered model name, version, alias and run id;
* ``lineage.json`` and ``model_card.json`` or ``model_card.md`` when the run has them
  (the register stage logs the card as ``reports/model_card.md``);
* ``params.yaml``: the parameters file whose ``features`` section the model needs.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cardfraud.training import TrainedModel

logger = logging.getLogger(__name__)

SERVING_FILE = "serving.json"
MODEL_FOLDER = "model"
LINEAGE_FILE = "lineage.json"
MODEL_CARD_FILES = ("model_card.json", "model_card.md")
# Path of the Markdown model card among the run's artifacts, as the register stage
# logs it.
RUN_MODEL_CARD = "reports/model_card.md"
PARAMS_FILE = "params.yaml"


@dataclass(frozen=True)
class ServedModel:
    """A loaded model version with what explanations need about it.

    Attributes:
        model: The booster and its metadata; all scoring goes through it.
        name: Registered model name.
        version: Registered version number, e.g. ``"3"``.
        alias: The alias that resolved to the version, empty when pinned by number.
        run_id: MLflow run that logged the version.
        source: ``registry`` or the packaged folder's path.
        lineage: Feature name to its view, source and transformation; empty when
            the run has no lineage file.
        model_card: The run's model card, or one built from the model's metadata.
    """

    model: TrainedModel
    name: str
    version: str
    alias: str
    run_id: str
    source: str
    lineage: dict[str, Any] = field(default_factory=dict)
    model_card: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """Return the identity of the model for responses and logs."""
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "run_id": self.run_id,
            "flavour": self.model.flavour,
            "source": self.source,
        }


def load_from_registry(
    *,
    tracking_uri: str,
    model_name: str,
    alias: str,
    version: str | None = None,
) -> ServedModel:
    """Load a registered version: ``version`` if given, else what ``alias`` points to.

    The alias is resolved once, with the registry's alias lookup, and the version
    number it returned is what gets loaded, so a service keeps serving that version
    when the alias moves. With ``version`` given, the result's alias is ``alias``
    when it points to that version at load time, else empty.

    Raises:
        LookupError: The model, the alias or the version does not exist.
    """
    import mlflow

    from cardfraud.registry import find_alias_version, make_client, read_model_folder

    client = make_client(tracking_uri)
    if version is None:
        found = find_alias_version(client, model_name=model_name, alias=alias)
        if found is None:
            raise LookupError(
                f"registered model {model_name!r} has no alias {alias!r} at "
                f"{tracking_uri}; run the register stage first"
            )
        version = str(found.version)
    elif alias:
        # A pinned version keeps the alias name only while the alias points to it.
        found = find_alias_version(client, model_name=model_name, alias=alias)
        alias = alias if found is not None and str(found.version) == version else ""
    registered = _get_version(client, model_name=model_name, version=version)
    with tempfile.TemporaryDirectory(prefix="cardfraud-served-") as folder:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=client.get_model_version_download_uri(model_name, version),
            dst_path=folder,
            tracking_uri=tracking_uri,
        )
        model = read_model_folder(Path(local))
    run_id = registered.run_id or ""
    lineage, card = _run_documents(tracking_uri, run_id)
    if card is None:
        metrics = _run_metrics(tracking_uri, run_id) if run_id else {}
        card = build_model_card(model, version=version, metrics=metrics)
    logger.info(
        "loaded %s version %s (alias %r, flavour %s) from the registry at %s",
        model_name,
        version,
        alias,
        model.flavour,
        tracking_uri,
    )
    return ServedModel(
        model=model,
        name=model_name,
        version=version,
        alias=alias,
        run_id=run_id,
        source="registry",
        lineage=lineage,
        model_card=card,
    )


def _get_version(client: Any, *, model_name: str, version: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(model_name, version)
    except MlflowException as error:
        raise LookupError(
            f"registered model {model_name!r} has no version {version!r}: "
            f"{error.message}; pin an existing version (CARDFRAUD_MODEL_VERSION)"
        ) from None


def _run_documents(
    tracking_uri: str, run_id: str
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Download the run's lineage and model card; empty and None where absent."""
    if not run_id:
        return {}, None
    import mlflow
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="cardfraud-run-") as folder:
        target = Path(folder)
        names = (LINEAGE_FILE, *MODEL_CARD_FILES, RUN_MODEL_CARD)
        for name in names:
            try:
                mlflow.artifacts.download_artifacts(
                    run_id=run_id,
                    artifact_path=name,
                    dst_path=folder,
                    tracking_uri=tracking_uri,
                )
            except (MlflowException, OSError) as error:
                logger.debug("run %s has no %s: %s", run_id, name, error)
        return _read_lineage(target), _read_model_card(target)


def _run_metrics(tracking_uri: str, run_id: str) -> dict[str, float]:
    from mlflow.exceptions import MlflowException

    from cardfraud.registry import make_client

    try:
        return dict(make_client(tracking_uri).get_run(run_id).data.metrics)
    except MlflowException as error:
        logger.warning("metrics of run %s not read: %s", run_id, error)
        return {}


def _read_lineage(folder: Path) -> dict[str, Any]:
    path = folder / LINEAGE_FILE
    if not path.is_file():
        logger.warning("no %s in %s; explanations carry no lineage", path.name, folder)
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def _read_model_card(folder: Path) -> dict[str, Any] | None:
    json_card = folder / MODEL_CARD_FILES[0]
    if json_card.is_file():
        return json.loads(json_card.read_text(encoding="utf-8"))
    for markdown_card in (folder / MODEL_CARD_FILES[1], folder / RUN_MODEL_CARD):
        if markdown_card.is_file():
            return {"markdown": markdown_card.read_text(encoding="utf-8")}
    return None


def build_model_card(
    model: TrainedModel, *, version: str, metrics: dict[str, float]
) -> dict[str, Any]:
    """Build a short model card from the model's metadata and run metrics.

    Used when the run has no ``model_card.json`` or ``model_card.md``.
    """
    meta = model.meta
    return {
        "source": "built from model_meta.json; the run has no model card",
        "version": version,
        "flavour": model.flavour,
        "library_version": meta.get("library_version"),
        "intended_use": (
            "Real-time fraud scoring of card authorisations; decisions above the "
            "review threshold go to a human analyst."
        ),
        "features": list(model.feature_columns),
        "training_windows": meta.get("windows", {}),
        "calibration": (meta.get("calibration") or {}).get("method"),
        "thresholds": dict(model.thresholds),
        "decision_rule": meta.get("decision_rule"),
        "data_fingerprint": meta.get("data_fingerprint"),
        "metrics": {
            name: value
            for name, value in sorted(metrics.items())
            if name.startswith("test_")
        },
    }


def load_from_folder(folder: Path) -> ServedModel:
    """Load a packaged model folder written by ``package_model``.

    Raises:
        FileNotFoundError: The folder lacks ``serving.json`` or ``model/``.
    """
    from cardfraud.registry import read_model_folder

    serving_path = folder / SERVING_FILE
    if not serving_path.is_file() or not (folder / MODEL_FOLDER).is_dir():
        raise FileNotFoundError(
            f"{folder} is not a packaged model folder: it needs {SERVING_FILE} and "
            f"{MODEL_FOLDER}/; build it with bento/package_model.py"
        )
    serving = json.loads(serving_path.read_text(encoding="utf-8"))
    model = read_model_folder(folder / MODEL_FOLDER)
    version = str(serving["version"])
    card = _read_model_card(folder) or build_model_card(
        model, version=version, metrics=serving.get("metrics", {})
    )
    logger.info(
        "loaded %s version %s (flavour %s) from the packaged folder %s",
        serving["name"],
        version,
        model.flavour,
        folder,
    )
    return ServedModel(
        model=model,
        name=serving["name"],
        version=version,
        alias=serving.get("alias", ""),
        run_id=serving.get("run_id", ""),
        source=str(folder),
        lineage=_read_lineage(folder),
        model_card=card,
    )


def package_model(
    *,
    tracking_uri: str,
    model_name: str,
    alias: str,
    params_path: Path,
    destination: Path,
) -> dict[str, Any]:
    """Write the version that ``alias`` points to into a packaged model folder.

    ``destination`` is replaced. Returns the content of ``serving.json``.
    """
    import mlflow

    from cardfraud.registry import find_alias_version, make_client

    client = make_client(tracking_uri)
    found = find_alias_version(client, model_name=model_name, alias=alias)
    if found is None:
        raise LookupError(
            f"registered model {model_name!r} has no alias {alias!r} at "
            f"{tracking_uri}; run the register stage first"
        )
    version = str(found.version)
    staging = Path(tempfile.mkdtemp(prefix="cardfraud-package-"))
    try:
        downloaded = mlflow.artifacts.download_artifacts(
            artifact_uri=client.get_model_version_download_uri(model_name, version),
            dst_path=str(staging / "download"),
            tracking_uri=tracking_uri,
        )
        shutil.move(downloaded, staging / MODEL_FOLDER)
        shutil.rmtree(staging / "download", ignore_errors=True)
        run_id = found.run_id or ""
        lineage, card = _run_documents(tracking_uri, run_id)
        metrics = _run_metrics(tracking_uri, run_id) if run_id else {}
        if lineage:
            (staging / LINEAGE_FILE).write_text(json.dumps(lineage, indent=2))
        if card is not None and "markdown" not in card:
            (staging / MODEL_CARD_FILES[0]).write_text(json.dumps(card, indent=2))
        elif card is not None:
            (staging / MODEL_CARD_FILES[1]).write_text(card["markdown"])
        shutil.copyfile(params_path, staging / PARAMS_FILE)
        serving = {
            "name": model_name,
            "version": version,
            "alias": alias,
            "run_id": run_id,
            "tracking_uri": tracking_uri,
            "metrics": metrics,
        }
        (staging / SERVING_FILE).write_text(json.dumps(serving, indent=2) + "\n")
        if destination.exists():
            shutil.rmtree(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("packaged %s version %s into %s", model_name, version, destination)
    return serving
