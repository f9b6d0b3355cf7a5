"""Reference profile: the training rows' distribution of every feature and the score.

Numeric features get quantile bins for the population stability index and a finer
cumulative distribution for the Kolmogorov-Smirnov statistic. Categorical features
(codes and 0/1 flags) get the share of each level. The profile is written as JSON
into the model folder at train time, beside ``model_meta.json``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from cardfraud.features import FIRST_TIME_ATTRIBUTES

logger = logging.getLogger(__name__)

PROFILE_FILE = "reference_profile.json"
PROFILE_VERSION = 1
SCORE_NAME = "score"
"""Name of the score's entry in a profile, beside the feature names."""
CATEGORICAL_FEATURES: frozenset[str] = frozenset(
    {
        *FIRST_TIME_ATTRIBUTES,
        "hour_of_day",
        "day_of_week",
        "channel_code",
        "card_present",
        "cross_border",
        "mcc_code",
    }
)
"""Features compared level by level (codes and flags); every other is numeric."""
PSI_BINS = 10
KS_BINS = 100
MAX_LEVELS = 64
OTHER_LEVEL = "other"


class ProfileError(ValueError):
    """A reference profile is missing, invalid or does not match the model."""


@dataclass(frozen=True)
class NumericReference:
    """Reference distribution of one numeric column.

    Attributes:
        psi_edges: Inner edges of the PSI bins, increasing. Bin i contains the
            values in ``[edges[i-1], edges[i])``, and the end bins are open.
        psi_shares: Share of reference rows in each PSI bin, ``len(psi_edges) + 1``.
        ks_edges: Inner edges of the fine bins of the KS statistic.
        ks_shares: Share of reference rows in each fine bin.
    """

    psi_edges: np.ndarray
    psi_shares: np.ndarray
    ks_edges: np.ndarray
    ks_shares: np.ndarray

    def to_json(self) -> dict[str, Any]:
        """Return the entry as JSON-ready lists."""
        return {
            "kind": "numeric",
            "psi_edges": self.psi_edges.tolist(),
            "psi_shares": self.psi_shares.tolist(),
            "ks_edges": self.ks_edges.tolist(),
            "ks_shares": self.ks_shares.tolist(),
        }


@dataclass(frozen=True)
class CategoricalReference:
    """Reference shares of the levels of one categorical column.

    Attributes:
        levels: Level values (float codes), at most ``MAX_LEVELS``, most common
            first; rarer levels and levels unseen in training fall in ``other``.
        shares: Share of reference rows per level, then the ``other`` share last.
    """

    levels: np.ndarray
    shares: np.ndarray

    def to_json(self) -> dict[str, Any]:
        """Return the entry as JSON-ready lists."""
        return {
            "kind": "categorical",
            "levels": self.levels.tolist(),
            "shares": self.shares.tolist(),
        }


ColumnReference = NumericReference | CategoricalReference


@dataclass(frozen=True)
class ReferenceProfile:
    """Reference distributions of the model's features and score.

    Attributes:
        columns: Feature name (and ``score``) to its reference.
        rows: Number of reference rows.
        window: ISO start and end of the reference rows' time span.
    """

    columns: dict[str, ColumnReference]
    rows: int
    window: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        """Return the profile as a JSON-ready mapping."""
        return {
            "version": PROFILE_VERSION,
            "rows": self.rows,
            "window": dict(self.window),
            "columns": {name: ref.to_json() for name, ref in self.columns.items()},
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> ReferenceProfile:
        """Build a profile from the output of :meth:`to_json`.

        Raises:
            ProfileError: The document's version or an entry's kind is unknown.
        """
        if document.get("version") != PROFILE_VERSION:
            raise ProfileError(
                f"reference profile version {document.get('version')!r} is not "
                f"{PROFILE_VERSION}; rerun the train stage to rewrite it"
            )
        columns: dict[str, ColumnReference] = {}
        for name, entry in document["columns"].items():
            if entry["kind"] == "numeric":
                columns[name] = NumericReference(
                    *(
                        np.asarray(entry[key], dtype=np.float64)
                        for key in ("psi_edges", "psi_shares", "ks_edges", "ks_shares")
                    )
                )
            elif entry["kind"] == "categorical":
                columns[name] = CategoricalReference(
                    np.asarray(entry["levels"], dtype=np.float64),
                    np.asarray(entry["shares"], dtype=np.float64),
                )
            else:
                raise ProfileError(
                    f"reference profile column {name!r} has kind {entry['kind']!r}; "
                    "expected numeric or categorical"
                )
        return cls(columns, int(document["rows"]), dict(document["window"]))


def column_kind(name: str) -> str:
    """Return ``categorical`` for codes and flags, ``numeric`` otherwise."""
    return "categorical" if name in CATEGORICAL_FEATURES else "numeric"


def quantile_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Return increasing inner edges that split ``values`` into about ``bins`` bins.

    Edges are quantiles. Ties collapse quantiles, so a mass at one value (most card
    counts are 0) gets a bin of its own, and the values above the highest edge are
    split again by their own quantiles into the bins left over.
    """
    if values.size == 0:
        return np.empty(0)
    probabilities = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    edges = np.unique(np.quantile(values, probabilities, method="lower"))
    # An edge at the minimum would leave the first bin empty in the reference.
    edges = edges[edges > values.min()]
    if edges.size >= bins - 1:
        return edges
    top = edges[-1] if edges.size else values.min()
    above = values[values > top]
    if above.size == 0:
        return edges
    spare = max(bins - 1 - edges.size, 1)
    tail = np.quantile(above, np.linspace(0.0, 1.0, spare + 1)[:-1], method="lower")
    return np.unique(np.concatenate([edges, tail]))


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Return the share of ``values`` in each bin of the inner ``edges``."""
    counts = np.bincount(
        np.searchsorted(edges, values, side="right"), minlength=edges.size + 1
    )
    return counts / max(values.size, 1)


def numeric_reference(values: np.ndarray) -> NumericReference:
    """Build the numeric reference of one column's values (float64, shape (rows,))."""
    psi_edges = quantile_edges(values, PSI_BINS)
    ks_edges = quantile_edges(values, KS_BINS)
    return NumericReference(
        psi_edges, bin_shares(values, psi_edges), ks_edges, bin_shares(values, ks_edges)
    )


def categorical_reference(values: np.ndarray) -> CategoricalReference:
    """Build the categorical reference of one column's values (codes as float64)."""
    levels, counts = np.unique(values, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:MAX_LEVELS]
    shares = counts[order] / max(values.size, 1)
    return CategoricalReference(levels[order], np.append(shares, 1.0 - shares.sum()))


def build_profile(
    frame: pl.DataFrame,
    *,
    feature_columns: list[str],
    scores: np.ndarray,
    window: dict[str, str],
) -> ReferenceProfile:
    """Build the reference profile of the rows in ``frame`` and of ``scores``.

    Args:
        frame: Reference rows with every feature column.
        feature_columns: The model's features.
        scores: The model's fraud probabilities of the score reference rows, shape
            (rows,).
        window: ISO start and end of the rows' time span, for the record.

    Raises:
        ProfileError: The frame has no rows or lacks a feature column.
    """
    if frame.height == 0:
        raise ProfileError(
            "no reference rows: the training window is empty; check train.cutoff"
        )
    missing = [name for name in feature_columns if name not in frame.columns]
    if missing:
        raise ProfileError(f"reference rows lack feature column(s) {missing}")
    columns: dict[str, ColumnReference] = {}
    for name in feature_columns:
        values = frame[name].cast(pl.Float64).to_numpy()
        if column_kind(name) == "categorical":
            columns[name] = categorical_reference(values)
        else:
            columns[name] = numeric_reference(values)
    columns[SCORE_NAME] = numeric_reference(np.asarray(scores, dtype=np.float64))
    return ReferenceProfile(columns, frame.height, window)


def write_profile(profile: ReferenceProfile, folder: Path) -> Path:
    """Write ``reference_profile.json`` into ``folder`` and return its path."""
    path = folder / PROFILE_FILE
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(profile.to_json(), indent=1, sort_keys=True) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def read_profile(folder: Path) -> ReferenceProfile:
    """Read ``reference_profile.json`` from ``folder``.

    Raises:
        FileNotFoundError: The folder has no profile; :func:`profile_for_model`
            builds one from the training rows.
    """
    path = folder / PROFILE_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found; rerun the train stage, or build the profile from "
            "the training rows with cardfraud.monitoring.reference.profile_for_model"
        )
    return ReferenceProfile.from_json(json.loads(path.read_text(encoding="utf-8")))


def window_rows(frame: pl.DataFrame, window: dict[str, str]) -> pl.DataFrame:
    """Return the rows with ``window["start"] <= timestamp < window["end"]``."""
    start = datetime.fromisoformat(window["start"])
    end = datetime.fromisoformat(window["end"])
    return frame.filter((pl.col("timestamp") >= start) & (pl.col("timestamp") < end))


def reference_rows(
    frame: pl.DataFrame, model: Any
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return the rows of the feature reference and of the score reference.

    Features are described by the rows of the model's fit window
    (``meta.windows.fit``, else ``train``, else every row). The score is described
    by the rows of the test window (``meta.windows.test``) when it has any: scores
    of the rows a model was fitted on are overconfident, so they would read as
    drift on any new day.
    """
    windows = model.meta.get("windows", {})
    fit = windows.get("fit") or windows.get("train")
    features = frame if fit is None else window_rows(frame, fit)
    test = windows.get("test")
    scored = window_rows(frame, test) if test is not None else features
    return features, scored if scored.height else features


def profile_for_model(frame: pl.DataFrame, model: Any) -> ReferenceProfile:
    """Build the profile of a model from the feature table.

    Args:
        frame: The feature table (``timestamp`` and every feature column).
        model: A ``cardfraud.training.TrainedModel``.
    """
    rows, scored = reference_rows(frame, model)
    timestamps = rows["timestamp"]
    window = {
        "start": timestamps.min().isoformat() if rows.height else "",
        "end": timestamps.max().isoformat() if rows.height else "",
    }
    scores = model.predict_proba(scored) if scored.height else np.empty(0)
    return build_profile(
        rows, feature_columns=model.feature_columns, scores=scores, window=window
    )


def write_reference_profile(folder: Path, frame: pl.DataFrame, model: Any) -> Path:
    """Build the model's reference profile from the feature table and write it.

    The train stage calls this after saving the model, so the profile travels with
    the model files.
    """
    profile = profile_for_model(frame, model)
    path = write_profile(profile, folder)
    logger.info("wrote the reference profile of %d rows to %s", profile.rows, path)
    return path
