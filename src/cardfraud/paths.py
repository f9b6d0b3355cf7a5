"""Project root discovery and the workspace layout of stage outputs.

The pipeline's workspace is the project root itself. Notebook smoke runs and tests use a
separate workspace folder with the same layout, so they never touch pipeline outputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SMOKE_DIR_ENV = "CARDFRAUD_SMOKE_DIR"
ROOT_ENV = "CARDFRAUD_ROOT"


def project_root() -> Path:
    """Return the repository root: ``$CARDFRAUD_ROOT`` or the folder holding dvc.yaml.

    The search starts at this file, so it does not depend on the working directory.
    """
    configured = os.environ.get(ROOT_ENV)
    if configured:
        return Path(configured).resolve()
    module_path = Path(__file__).resolve()
    for folder in module_path.parents:
        if (folder / "dvc.yaml").is_file() and (folder / "pyproject.toml").is_file():
            return folder
    raise FileNotFoundError(
        f"project root not found above {module_path}: "
        f"set {ROOT_ENV} to the repository folder"
    )


@dataclass(frozen=True)
class Workspace:
    """Layout of stage outputs under one root folder.

    Attributes:
        root: Folder that contains every output below.
    """

    root: Path

    @property
    def raw_dir(self) -> Path:
        """Generated or ingested transactions as daily parquet partitions."""
        return self.root / "data" / "raw"

    @property
    def features_dir(self) -> Path:
        """Feature table (one row per transaction) and its metadata."""
        return self.root / "data" / "features"

    @property
    def validation_dir(self) -> Path:
        """Data validation reports."""
        return self.root / "data" / "validation"

    @property
    def models_dir(self) -> Path:
        """The trained candidate model and its metadata."""
        return self.root / "models"

    @property
    def candidate_dir(self) -> Path:
        """The trained candidate model, its metadata and thresholds."""
        return self.models_dir / "candidate"

    @property
    def explain_dir(self) -> Path:
        """SHAP values of the explained sample."""
        return self.models_dir / "explain"

    @property
    def registration_file(self) -> Path:
        """Promotion report of the last registration."""
        return self.models_dir / "registration.json"

    @property
    def reports_dir(self) -> Path:
        """Report pages and the pipeline summary they show."""
        return self.root / "reports"

    @property
    def metrics_dir(self) -> Path:
        """Metrics files declared to DVC."""
        return self.root / "metrics"

    @property
    def plots_dir(self) -> Path:
        """Plot data files declared to DVC."""
        return self.root / "plots"

    @property
    def feature_repo(self) -> Path:
        """Feast repository: definitions, store settings, registry, online store."""
        return self.root / "feature_repo"

    @property
    def state_dir(self) -> Path:
        """Live state that is not a pipeline output: MLflow store, audit log."""
        return self.root / "state"

    @property
    def mlflow_db(self) -> Path:
        """SQLite backend of the embedded MLflow tracking store and registry."""
        return self.state_dir / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        """Artifact root of the embedded MLflow store."""
        return self.state_dir / "mlartifacts"

    @property
    def audit_db(self) -> Path:
        """SQLite audit log of scoring decisions."""
        return self.state_dir / "audit.db"

    def tracking_uri(self) -> str:
        """Return ``$MLFLOW_TRACKING_URI`` if set, else the workspace's SQLite store."""
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.mlflow_db}"


def resolve_workspace(workspace: str | os.PathLike[str] | None) -> Workspace:
    """Turn a notebook's ``workspace`` parameter into a Workspace.

    Args:
        workspace: None for the smoke workspace (``$CARDFRAUD_SMOKE_DIR``, else
            ``<root>/.smoke``). A relative path is taken from the project root, so
            ``"."`` is the pipeline's own workspace. An absolute path is used as is.
    """
    if workspace is None:
        configured = os.environ.get(SMOKE_DIR_ENV)
        folder = Path(configured) if configured else project_root() / ".smoke"
    else:
        folder = Path(workspace)
        if not folder.is_absolute():
            folder = project_root() / folder
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return Workspace(folder)
