"""Right to explanation: a past decision, why it was made and what would change it.

An explanation is built from the decision's audit record: the stored decision, score,
reasons, every feature value the model saw with its lineage, the model version and
model card. It adds a counterfactual: the smallest change to the strongest factors
that gives another decision, found by re-scoring the stored feature values with the
served model.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from cardfraud.served_model import ServedModel

# Factors searched for a counterfactual: the strongest that pushed towards the decision.
COUNTERFACTUAL_FACTORS = 4


@dataclass(frozen=True)
class Counterfactual:
    """Feature changes that give another decision, verified by re-scoring.

    Attributes:
        changes: ``{"feature", "before", "after"}`` per changed feature.
        score: The model's score with the changes applied.
        decision: The decision with the changes applied.
    """

    changes: list[dict[str, Any]]
    score: float
    decision: str

    def to_json(self) -> dict[str, Any]:
        """Return the counterfactual as a JSON-serialisable dict."""
        return {"changes": self.changes, "score": self.score, "decision": self.decision}


def split_thresholds(served: ServedModel) -> dict[str, np.ndarray]:
    """Return every split threshold of each feature in the model's trees, sorted.

    A feature's value only matters relative to these thresholds, so they and the
    values just beside them are the only candidates a counterfactual needs.
    """
    model = served.model
    columns = model.feature_columns
    if model.flavour == "xgboost":
        trees = model.booster.trees_to_dataframe()
        splits = trees[trees["Feature"] != "Leaf"]
        names = splits["Feature"].map(lambda name: _xgboost_feature(name, columns))
        values = splits["Split"].astype(float)
    else:
        trees = model.booster.trees_to_dataframe()
        splits = trees[trees["split_feature"].notna()]
        names = splits["split_feature"].map(
            lambda name: _lightgbm_feature(name, columns)
        )
        values = splits["threshold"].astype(float)
    thresholds: dict[str, np.ndarray] = {}
    for name in columns:
        chosen = values[names == name].to_numpy(dtype=np.float64)
        thresholds[name] = np.unique(chosen[np.isfinite(chosen)])
    return thresholds


def _xgboost_feature(name: str, columns: list[str]) -> str:
    if name in columns:
        return name
    if name.startswith("f") and name[1:].isdigit() and int(name[1:]) < len(columns):
        return columns[int(name[1:])]
    return name


def _lightgbm_feature(name: str, columns: list[str]) -> str:
    if name in columns:
        return name
    if name.startswith("Column_") and name[7:].isdigit():
        index = int(name[7:])
        if index < len(columns):
            return columns[index]
    return name


def candidate_values(current: float, thresholds: np.ndarray) -> np.ndarray:
    """Return values on both sides of each threshold, nearest to ``current`` first.

    XGBoost sends ``x < t`` left and LightGBM ``x <= t``; the threshold and its
    two neighbouring floats cover both rules. For a whole-valued ``current`` the
    candidates are the whole numbers next to each threshold.
    """
    if thresholds.size == 0:
        return thresholds
    below = np.nextafter(thresholds, -np.inf)
    above = np.nextafter(thresholds, np.inf)
    candidates = np.unique(np.concatenate([below, thresholds, above]))
    if float(current).is_integer():
        # Counts, flags and codes take whole values: keep the candidates whole.
        candidates = np.unique(
            np.concatenate([np.floor(candidates), np.ceil(candidates)])
        )
    candidates = candidates[candidates != current]
    order = np.argsort(np.abs(candidates - current), kind="stable")
    return candidates[order]


def find_counterfactual(
    served: ServedModel,
    *,
    features: dict[str, float],
    contributions: dict[str, float],
    decision: str,
    thresholds_by_feature: dict[str, np.ndarray],
    factors: int = COUNTERFACTUAL_FACTORS,
) -> Counterfactual | None:
    """Find a small change to the strongest factors that changes the decision.

    The factors are the features whose contributions pushed hardest towards the
    decision: positive ones for review and decline, negative ones for approve.
    Each factor alone is tried first at every candidate value; of the changes that
    give another decision, the one nearest to the stored value (relative to its
    size) wins. When no single change works, factors are changed one after
    another, each to the value that moves the score furthest away from the
    decision, until the decision changes; the last change is then the nearest
    value that still changes it.

    Returns:
        The counterfactual, verified by re-scoring, or None when changing every
        strongest factor keeps the decision.
    """
    columns = served.model.feature_columns
    row = np.array([features[name] for name in columns], dtype=np.float64)
    lower = decision != "approve"
    toward = {name: contributions[name] * (1 if lower else -1) for name in columns}
    ranked = sorted(columns, key=lambda name: toward[name], reverse=True)
    strongest = [name for name in ranked[:factors] if toward[name] > 0] or ranked[:1]
    search = _FactorSearch(served, decision, thresholds_by_feature)

    singles = [found for name in strongest if (found := search.nearest(row, name))]
    if singles:
        return min(singles, key=lambda item: _relative_change(**item.changes[-1]))

    changes: list[dict[str, Any]] = []
    moved = row.copy()
    remaining = list(strongest)
    while len(remaining) > 1:
        name = max(remaining, key=lambda item: search.furthest(moved, item)[1])
        value, _ = search.furthest(moved, name)
        changes.append(_change(name, moved[columns.index(name)], value))
        moved[columns.index(name)] = value
        remaining.remove(name)
        for last in remaining:
            found = search.nearest(moved, last)
            if found is not None:
                return Counterfactual(
                    changes=[*changes, *found.changes],
                    score=found.score,
                    decision=found.decision,
                )
    return None


class _FactorSearch:
    """Re-scores one row with one feature set to each of its candidate values."""

    def __init__(
        self,
        served: ServedModel,
        decision: str,
        thresholds_by_feature: dict[str, np.ndarray],
    ) -> None:
        self.model = served.model
        self.decision = decision
        self.lower = decision != "approve"
        self.thresholds = thresholds_by_feature

    def _scores(self, row: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
        from cardfraud.serving import score_rows

        index = self.model.feature_columns.index(name)
        candidates = candidate_values(row[index], self.thresholds.get(name, _NONE))
        if candidates.size == 0:
            return candidates, candidates
        matrix = np.repeat(row[None, :], candidates.size, axis=0)
        matrix[:, index] = candidates
        return candidates, score_rows(self.model, matrix)

    def nearest(self, row: np.ndarray, name: str) -> Counterfactual | None:
        """Return the nearest value of ``name`` that changes the decision, if any."""
        from cardfraud.serving import decide

        candidates, scores = self._scores(row, name)
        index = self.model.feature_columns.index(name)
        decisions = [decide(float(score), self.model.thresholds) for score in scores]
        flipped = [i for i, value in enumerate(decisions) if value != self.decision]
        if not flipped:
            return None
        best = min(flipped, key=lambda i: _relative_change(row[index], candidates[i]))
        return Counterfactual(
            changes=[_change(name, row[index], candidates[best])],
            score=float(scores[best]),
            decision=decisions[best],
        )

    def furthest(self, row: np.ndarray, name: str) -> tuple[float, float]:
        """Return the value of ``name`` that moves the score most, and the move."""
        candidates, scores = self._scores(row, name)
        index = self.model.feature_columns.index(name)
        if candidates.size == 0:
            return float(row[index]), 0.0
        from cardfraud.serving import score_rows

        current = float(score_rows(self.model, row[None, :])[0])
        moves = (current - scores) if self.lower else (scores - current)
        best = int(np.argmax(moves))
        return float(candidates[best]), float(moves[best])


_NONE = np.empty(0)


def _relative_change(before: float, after: float, **_: Any) -> float:
    return abs(float(after) - float(before)) / (1.0 + abs(float(before)))


def _change(name: str, before: float, after: float) -> dict[str, Any]:
    return {"feature": name, "before": float(before), "after": float(after)}


def build_explanation(
    record: dict[str, Any],
    served: ServedModel,
    *,
    thresholds_by_feature: dict[str, np.ndarray],
) -> dict[str, Any]:
    """Build the explanation of one stored decision.

    The counterfactual is computed with the served model; when the record was
    decided by another version, it is left out and ``counterfactual_note`` says
    why, because the served model cannot re-score that decision.
    """
    features = record["features"]
    lineage = served.lineage
    feature_rows = [
        {
            "feature": name,
            "value": value,
            "contribution": record["contributions"].get(name),
            "lineage": lineage.get(name, {}),
        }
        for name, value in features.items()
    ]
    explanation: dict[str, Any] = {
        "transaction_id": record["transaction_id"],
        "decided_at": record["decided_at"],
        "decision": record["decision"],
        "score": record["score"],
        "thresholds": record["thresholds"],
        "model_version": record["model_version"],
        "model": record.get("model", {}),
        "reasons": record["reasons"],
        "base_value": record["base_value"],
        "margin": record["margin"],
        "cold_start": record.get("cold_start", False),
        "missing_features": record.get("missing_features", []),
        "degraded": record.get("degraded", False),
        "features": feature_rows,
        "request": record.get("request", {}),
        "model_card": served.model_card if _same_version(record, served) else {},
        "counterfactual": None,
    }
    if not _same_version(record, served):
        explanation["counterfactual_note"] = (
            f"decided by model version {record['model_version']}, while version "
            f"{served.version} is served; ask a service that serves that version"
        )
        return explanation
    found = find_counterfactual(
        served,
        features=features,
        contributions=record["contributions"],
        decision=record["decision"],
        thresholds_by_feature=thresholds_by_feature,
    )
    if found is None:
        explanation["counterfactual_note"] = (
            "no change to one or two of the strongest factors gives another decision"
        )
    else:
        explanation["counterfactual"] = found.to_json()
    return explanation


def _same_version(record: dict[str, Any], served: ServedModel) -> bool:
    return str(record.get("model_version")) == served.version


def render_html(explanation: dict[str, Any]) -> str:
    """Render an explanation as one self-contained HTML page for analysts."""
    escape = html.escape
    reasons = "".join(
        f"<tr><td>{escape(item['feature'])}</td><td>{item['value']:g}</td>"
        f"<td>{item['contribution']:+.4f}</td><td>{escape(item['sentence'])}</td></tr>"
        for item in explanation["reasons"]
    )
    features = "".join(
        f"<tr><td>{escape(row['feature'])}</td><td>{row['value']:g}</td>"
        f"<td>{_signed(row['contribution'])}</td>"
        f"<td>{escape(str(row['lineage'].get('transformation', '')))}</td>"
        f"<td>{escape(str(row['lineage'].get('online_source', '')))}</td></tr>"
        for row in explanation["features"]
    )
    counterfactual = explanation.get("counterfactual")
    if counterfactual:
        changes = "; ".join(
            f"{escape(change['feature'])} from {change['before']:g} "
            f"to {change['after']:g}"
            for change in counterfactual["changes"]
        )
        what_if = (
            f"<p>Changing {changes} gives score {counterfactual['score']:.4f} and "
            f"decision <b>{escape(counterfactual['decision'])}</b>.</p>"
        )
    else:
        what_if = f"<p>{escape(explanation.get('counterfactual_note', ''))}</p>"
    card = escape(json.dumps(explanation["model_card"], indent=2, sort_keys=True))
    flags = []
    if explanation["cold_start"]:
        flags.append(
            "no online history for " + ", ".join(explanation["missing_features"])
        )
    if explanation["degraded"]:
        flags.append("online store unavailable: scored with no-history defaults")
    flag_text = f"<p><b>Flags:</b> {escape('; '.join(flags))}</p>" if flags else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Decision {escape(explanation["transaction_id"])}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{border:1px solid #ccc;
padding:4px 8px}}table{{border-collapse:collapse}}</style></head><body>
<h1>Decision on transaction {escape(explanation["transaction_id"])}</h1>
<p><b>{escape(explanation["decision"])}</b> with score
{explanation["score"]:.4f} (review from {explanation["thresholds"]["review"]:.4f},
decline from {explanation["thresholds"]["decline"]:.4f}), decided at
{escape(explanation["decided_at"])} by model version
{escape(str(explanation["model_version"]))}.</p>
{flag_text}
<h2>Strongest reasons</h2>
<table><tr><th>feature</th><th>value</th><th>contribution (log-odds)</th>
<th>meaning</th></tr>{reasons}</table>
<h2>What would have changed the decision</h2>{what_if}
<h2>Every feature the model saw</h2>
<table><tr><th>feature</th><th>value</th><th>contribution</th><th>computed as</th>
<th>online source</th></tr>{features}</table>
<h2>Model card</h2><pre>{card}</pre>
</body></html>
"""


def _signed(value: float | None) -> str:
    return "" if value is None else f"{value:+.4f}"
