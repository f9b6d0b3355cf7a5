"""Single-column leak audit: how well each column alone separates fraud.

Every column is scored by the ROC AUC of one numeric score against ``is_fraud``,
reported as ``max(AUC, 1 - AUC)`` so that 0.5 means no separation and 1.0 means
perfect separation in either direction. Scores per column kind:

- numeric and boolean columns: the value itself;
- timestamps and dates: microseconds since the Unix epoch;
- string ids: the integer suffix (``C000000594`` scores 594), or the
  lexicographic rank when some value has no integer suffix;
- other strings: the fraud rate of the value in the other folds of a seeded
  K-fold split. A value seen in only one fold gets the overall rate, so a
  high-cardinality column cannot score by memorising its rows.

An id-like column (ids and timestamps) should carry no signal on its own. Fraud
comes in incidents on one card, so the AUC of an id varies far more between data
sets than its row count suggests. Each AUC therefore gets a one-sided 95% lower
bound from the Hanley-McNeil standard error, computed with the number of distinct
cards (``group``) among the fraudulent and the legitimate rows in place of the row
counts. An id-like column whose lower bound is above the threshold (0.55 by
default) is flagged as a leak. One whose AUC is above the threshold but whose
lower bound is not is marked for a check: the data set has too few fraudulent
cards to tell. The target and the label columns (``label_available_at`` and
``fraud_scenario``, which only fraudulent rows fill) are excluded from the scan.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

logger = logging.getLogger(__name__)

TARGET = "is_fraud"
LABEL_COLUMNS = ("label_available_at", "fraud_scenario")
LEAK_THRESHOLD = 0.55
# Rows of one card are one sample: fraud comes in incidents on one card.
DEFAULT_GROUP = "card_id"
# One-sided 95% normal quantile of the AUC's lower bound.
LOWER_BOUND_Z = 1.645
DEFAULT_FOLDS = 5
PARTITION_GLOB = "dt=*/part-0.parquet"
# Integer suffixes of up to 18 digits fit in int64.
ID_SUFFIX_PATTERN = r"^\D*(\d{1,18})$"


@dataclass(frozen=True)
class ColumnAudit:
    """Separation of fraud by one column.

    Attributes:
        column: Column name.
        dtype: Polars dtype of the column, as text.
        kind: ``id``, ``timestamp``, ``numeric`` or ``categorical``.
        scored_by: How the score was computed, such as ``value`` or ``rank``.
        auc: ``max(AUC, 1 - AUC)`` of the score against the target, in [0.5, 1].
        fraud_side: ``high`` when fraud has the higher scores, ``low`` otherwise.
        rows_scored: Rows with a non-null score; null values are left out of the
            AUC of ids, timestamps and numeric columns.
        auc_lower: One-sided 95% lower bound of ``auc`` with groups as samples.
        id_like: True for ids and timestamps, the columns that can be flagged.
        leak: True when the column is id-like and ``auc_lower`` exceeds the
            threshold.
        check: True when the column is id-like and ``auc`` exceeds the threshold
            but ``auc_lower`` does not.
    """

    column: str
    dtype: str
    kind: str
    scored_by: str
    auc: float
    fraud_side: str
    rows_scored: int
    auc_lower: float
    id_like: bool
    leak: bool
    check: bool = False


@dataclass(frozen=True)
class AuditReport:
    """Result of a leak audit, columns sorted by AUC from highest.

    Attributes:
        rows: Number of rows audited.
        frauds: Number of fraudulent rows.
        threshold: AUC above which an id-like column is flagged.
        folds: Number of folds of the out-of-fold target rate.
        seed: Seed of the fold assignment.
        columns: One entry per scanned column.
        excluded: Column name to the reason it was not scanned.
        group: Column whose distinct values count as samples in the lower bounds,
            or None when rows count.
        fraud_groups: Distinct ``group`` values among the fraudulent rows.
    """

    rows: int
    frauds: int
    threshold: float
    folds: int
    seed: int
    columns: list[ColumnAudit] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)
    group: str | None = None
    fraud_groups: int = 0

    @property
    def leaks(self) -> list[ColumnAudit]:
        """Columns flagged as leaks, highest AUC first."""
        return [entry for entry in self.columns if entry.leak]

    @property
    def checks(self) -> list[ColumnAudit]:
        """Id-like columns above the threshold within sampling error of it."""
        return [entry for entry in self.columns if entry.check]

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-compatible values."""
        values = asdict(self)
        values["leaks"] = [entry.column for entry in self.leaks]
        values["checks"] = [entry.column for entry in self.checks]
        return values

    def to_json(self) -> str:
        """Return the report as indented JSON with a final newline."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def format_table(self) -> str:
        """Return the report as a text table, one column per line."""
        share = self.frauds / self.rows if self.rows else 0.0
        samples = (
            f"{self.fraud_groups} distinct {self.group} among them"
            if self.group
            else "rows as samples"
        )
        lines = [
            f"{self.rows} rows, {self.frauds} fraudulent ({share:.2%}, {samples}); "
            f"id-like columns whose 95% lower bound of AUC is above "
            f"{self.threshold} are flagged as leaks",
            f"{'column':<20} {'kind':<12} {'scored by':<22} {'AUC':>6} "
            f"{'lower':>6} {'fraud':>5} {'rows':>9}  flag",
        ]
        for entry in self.columns:
            flag = "LEAK" if entry.leak else "check" if entry.check else ""
            lines.append(
                f"{entry.column:<20} {entry.kind:<12} {entry.scored_by:<22} "
                f"{entry.auc:>6.3f} {entry.auc_lower:>6.3f} {entry.fraud_side:>5} "
                f"{entry.rows_scored:>9}  {flag}".rstrip()
            )
        excluded = ", ".join(
            f"{name} ({reason})" for name, reason in self.excluded.items()
        )
        lines.append(f"not scanned: {excluded or 'none'}")
        leaks = ", ".join(entry.column for entry in self.leaks)
        lines.append(f"leaks: {leaks}" if leaks else "no leak found")
        if self.checks:
            names = ", ".join(entry.column for entry in self.checks)
            lines.append(
                f"check: {names} above {self.threshold} but within sampling error; "
                f"{self.fraud_groups} fraudulent {self.group or 'rows'} are too few "
                "to tell, so audit a larger data set"
            )
        return "\n".join(lines)


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Compute the ROC AUC of ``scores`` for binary ``labels`` by the rank formula.

    Tied scores get their average rank, which counts a tie between a positive and
    a negative as one half, as scikit-learn's ``roc_auc_score`` does.

    Args:
        scores: 1-d array of numbers without NaN.
        labels: 1-d boolean array of the same length; True marks a positive.

    Returns:
        The AUC in [0, 1]; 0.5 means no separation.

    Raises:
        ValueError: The arrays differ in length, ``scores`` contains NaN, or
            ``labels`` lacks positives or negatives.
    """
    scores = np.asarray(scores)
    labels = np.asarray(labels, dtype=bool)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ValueError(
            f"scores {scores.shape} and labels {labels.shape} must be 1-d arrays "
            "of the same length"
        )
    if scores.dtype.kind == "f" and np.isnan(scores).any():
        raise ValueError("scores contain NaN; drop or fill those rows first")
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        raise ValueError(
            f"labels have {positives} positives and {negatives} negatives; "
            "the AUC needs at least one of each"
        )
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    starts_tie = np.ones(scores.size, dtype=bool)
    starts_tie[1:] = sorted_scores[1:] != sorted_scores[:-1]
    starts = np.flatnonzero(starts_tie)
    ends = np.append(starts[1:], scores.size)
    # 1-based ranks start+1 .. end share their mean.
    mean_rank = (starts + ends + 1) / 2.0
    positives_per_tie = np.add.reduceat(labels[order].astype(np.int64), starts)
    rank_sum = float(positives_per_tie @ mean_rank)
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def read_data_set(
    path: str | Path, *, storage_options: dict[str, Any] | None = None
) -> pl.DataFrame:
    """Read a data set folder's daily partitions, or one parquet file.

    Args:
        path: Folder holding ``dt=YYYY-MM-DD/part-0.parquet`` files, or a parquet
            file; a local path or any fsspec URL such as ``s3://bucket/raw``.
        storage_options: Keyword arguments of the fsspec filesystem, such as
            ``{"endpoint_url": ...}`` for S3.

    Raises:
        FileNotFoundError: ``path`` does not exist or contains no partitions.
    """
    import fsspec

    fs, root = fsspec.core.url_to_fs(str(path), **(storage_options or {}))
    if fs.isfile(root):
        files = [root]
    else:
        files = sorted(fs.glob(f"{root.rstrip('/')}/{PARTITION_GLOB}"))
    if not files:
        raise FileNotFoundError(
            f"no {PARTITION_GLOB} files found under {path}; pass the folder that "
            "fraudgen generate wrote"
        )
    frames = []
    for name in files:
        with fs.open(name, "rb") as handle:
            frames.append(pl.read_parquet(handle))
    return pl.concat(frames, how="vertical")


def audit_frame(
    frame: pl.DataFrame,
    *,
    target: str = TARGET,
    labels: tuple[str, ...] = LABEL_COLUMNS,
    threshold: float = LEAK_THRESHOLD,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    group: str | None = DEFAULT_GROUP,
) -> AuditReport:
    """Score how well each column of ``frame`` alone separates fraud.

    Args:
        frame: Transactions with a boolean ``target`` column.
        target: Name of the ground-truth column, boolean without nulls.
        labels: Columns derived from the target, left out of the scan.
        threshold: AUC above which an id-like column is flagged as a leak.
        folds: Number of folds of the out-of-fold target rate, at least 2.
        seed: Seed of the fold assignment.
        group: Column whose distinct values count as samples in the AUC's lower
            bound (rows count where it is None or not in ``frame``).

    Raises:
        ValueError: ``target`` is missing, not boolean or has nulls, holds only
            one class, or ``folds`` is out of range.
    """
    labels_array = _target_array(frame, target)
    if group is not None and group not in frame.columns:
        group = None
    groups = _group_codes(frame, group)
    _check_options(frame.height, threshold=threshold, folds=folds)
    fold = _assign_folds(frame.height, folds=folds, seed=seed)
    excluded = {target: "target"}
    excluded.update({name: "label" for name in labels if name in frame.columns})
    columns = []
    for name in frame.columns:
        if name in excluded:
            continue
        entry = _audit_column(
            frame[name], labels_array, fold, groups=groups, threshold=threshold
        )
        if entry is None:
            excluded[name] = f"unsupported dtype {frame[name].dtype}"
            continue
        columns.append(entry)
    columns.sort(key=lambda entry: (-entry.auc, entry.column))
    report = AuditReport(
        rows=frame.height,
        frauds=int(labels_array.sum()),
        threshold=threshold,
        folds=folds,
        seed=seed,
        columns=columns,
        excluded=excluded,
        group=group,
        fraud_groups=int(np.unique(groups[labels_array]).size),
    )
    logger.info(
        "audited %d columns of %d rows: %d leaks",
        len(columns),
        frame.height,
        len(report.leaks),
    )
    return report


def audit_path(
    path: str | Path,
    *,
    storage_options: dict[str, Any] | None = None,
    threshold: float = LEAK_THRESHOLD,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
) -> AuditReport:
    """Read a data set with :func:`read_data_set` and audit it with
    :func:`audit_frame`."""
    frame = read_data_set(path, storage_options=storage_options)
    return audit_frame(frame, threshold=threshold, folds=folds, seed=seed)


def _target_array(frame: pl.DataFrame, target: str) -> np.ndarray:
    if target not in frame.columns:
        raise ValueError(
            f"target column {target!r} not found; columns are {frame.columns}"
        )
    column = frame[target]
    if column.dtype != pl.Boolean or column.null_count():
        raise ValueError(
            f"target column {target!r} must be Boolean without nulls, got "
            f"{column.dtype} with {column.null_count()} nulls"
        )
    values = column.to_numpy()
    if values.all() or not values.any():
        raise ValueError(
            f"target column {target!r} has only one class; the audit needs both "
            "fraudulent and legitimate rows"
        )
    return values


def _check_options(rows: int, *, threshold: float, folds: int) -> None:
    if not 0.5 <= threshold < 1.0:
        raise ValueError(f"threshold {threshold} must be in [0.5, 1)")
    if not 2 <= folds <= rows:
        raise ValueError(
            f"folds {folds} must be at least 2 and at most the row count {rows}"
        )


def _assign_folds(rows: int, *, folds: int, seed: int) -> np.ndarray:
    """Return a balanced fold number in [0, folds) per row, int64."""
    rng = np.random.default_rng(seed)
    return rng.permutation(rows) % folds


def _group_codes(frame: pl.DataFrame, group: str | None) -> np.ndarray:
    """Return an integer code per row for ``group``, or the row number."""
    if group is None:
        return np.arange(frame.height)
    return frame[group].rank("dense").fill_null(0).to_numpy().astype(np.int64)


def auc_lower_bound(auc: float, positives: int, negatives: int) -> float:
    """Return the one-sided 95% lower bound of ``auc`` by Hanley and McNeil (1982).

    Args:
        auc: ``max(AUC, 1 - AUC)``, in [0.5, 1].
        positives: Independent fraudulent samples (distinct cards).
        negatives: Independent legitimate samples.
    """
    if positives < 1 or negatives < 1:
        return 0.5
    q1 = auc / (2.0 - auc)
    q2 = 2.0 * auc * auc / (1.0 + auc)
    variance = (
        auc * (1.0 - auc)
        + (positives - 1) * (q1 - auc * auc)
        + (negatives - 1) * (q2 - auc * auc)
    ) / (positives * negatives)
    return max(0.5, auc - LOWER_BOUND_Z * float(np.sqrt(max(variance, 0.0))))


def _audit_column(
    column: pl.Series,
    labels: np.ndarray,
    fold: np.ndarray,
    *,
    groups: np.ndarray,
    threshold: float,
) -> ColumnAudit | None:
    scored = _score_column(column, labels, fold)
    if scored is None:
        return None
    kind, scored_by, scores, mask = scored
    kept_labels = labels[mask]
    if kept_labels.all() or not kept_labels.any():
        # The non-null rows hold one class only, so the score ranks nothing.
        auc = 0.5
    else:
        auc = roc_auc(scores, kept_labels)
    id_like = kind in ("id", "timestamp")
    separation = max(auc, 1.0 - auc)
    kept_groups = groups[mask]
    lower = auc_lower_bound(
        separation,
        positives=int(np.unique(kept_groups[kept_labels]).size),
        negatives=int(np.unique(kept_groups[~kept_labels]).size),
    )
    return ColumnAudit(
        column=column.name,
        dtype=str(column.dtype),
        kind=kind,
        scored_by=scored_by,
        auc=separation,
        fraud_side="high" if auc >= 0.5 else "low",
        rows_scored=int(mask.sum()),
        auc_lower=lower,
        id_like=id_like,
        leak=id_like and lower > threshold,
        check=id_like and separation > threshold and lower <= threshold,
    )


def _score_column(
    column: pl.Series, labels: np.ndarray, fold: np.ndarray
) -> tuple[str, str, np.ndarray, np.ndarray] | None:
    """Return the kind, the scoring method, the scores and the mask of scored rows."""
    dtype = column.dtype
    is_id = column.name == "transaction_id" or column.name.endswith("_id")
    if dtype.is_temporal() and dtype != pl.Time and dtype != pl.Duration:
        mask = column.is_not_null().to_numpy()
        epoch = column.drop_nulls().dt.epoch("us").to_numpy()
        return "timestamp", "epoch microseconds", epoch, mask
    if dtype.is_numeric() or dtype == pl.Boolean:
        mask = column.is_not_null().to_numpy()
        values = column.drop_nulls().cast(pl.Float64).to_numpy()
        if dtype.is_float():
            finite = ~np.isnan(values)
            mask[mask] = finite
            values = values[finite]
        return ("id" if is_id else "numeric"), "value", values, mask
    if dtype in (pl.String, pl.Categorical, pl.Enum):
        text = column.cast(pl.String)
        if is_id:
            scored_by, values = _score_id(text.drop_nulls())
            return "id", scored_by, values, text.is_not_null().to_numpy()
        scores = _out_of_fold_rate(text, labels, fold)
        mask = np.ones(column.len(), dtype=bool)
        return "categorical", "out-of-fold fraud rate", scores, mask
    return None


def _score_id(values: pl.Series) -> tuple[str, np.ndarray]:
    """Score ids by their integer suffix, or by their rank when some lack one."""
    suffix = values.str.extract(ID_SUFFIX_PATTERN, 1)
    if values.len() and suffix.null_count() == 0:
        return "integer suffix", suffix.cast(pl.Int64).to_numpy()
    return "rank", values.rank("dense").to_numpy().astype(np.int64)


def _out_of_fold_rate(
    text: pl.Series, labels: np.ndarray, fold: np.ndarray
) -> np.ndarray:
    """Return each row's fraud rate of its value in the other folds, float64.

    Null is a value of its own. A value absent from the other folds gets the
    fraud rate of all rows, the same constant in every fold. The rate of the other
    folds alone would be lower where the row's own fold contains more fraud, so it
    would rank those rows against their labels.
    """
    folds = int(fold.max()) + 1
    codes = text.rank("dense").fill_null(0).to_numpy().astype(np.int64)
    cells = codes * folds + fold
    size = (int(codes.max()) + 1) * folds
    rows_cell = np.bincount(cells, minlength=size).reshape(-1, folds)
    frauds_cell = np.bincount(cells, weights=labels, minlength=size).reshape(-1, folds)
    rows_other = rows_cell.sum(axis=1, keepdims=True) - rows_cell
    frauds_other = frauds_cell.sum(axis=1, keepdims=True) - frauds_cell
    overall = labels.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(rows_other > 0, frauds_other / rows_other, overall)
    return rate[codes, fold]
