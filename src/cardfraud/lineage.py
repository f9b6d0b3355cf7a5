"""Checks of the feature lineage file against the model, Feast and params.yaml.

The build_features stage writes ``data/features/lineage.json``: one entry per model
feature with its Feast feature view, online source, source table, transformation
and parameters (``cardfraud.feast_definitions.feature_lineage``). The checks here
report every way in which that file can disagree with what the model uses, with
what the Feast registry contains, and with the windows and delays of the
``features`` section of params.yaml.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cardfraud.feast_definitions import REQUEST_SOURCE
from cardfraud.features import DISTINCT_ATTRIBUTES, NEW_VALUE_ATTRIBUTES
from cardfraud.params import FeaturesParams

if TYPE_CHECKING:
    from feast import FeatureStore

logger = logging.getLogger(__name__)

ENTRY_KEYS = ("feature_view", "online_source", "source", "transformation", "parameters")
WINDOW_KEYS = ("window_hours", "window_days", "label_delay_days")
"""Lineage parameters that come from params.yaml and must match it."""


class LineageError(ValueError):
    """The lineage file disagrees with the model, the Feast registry or params.yaml.

    Attributes:
        problems: One sentence per disagreement.
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} lineage problem(s):\n" + "\n".join(problems))
        self.problems = problems


def read_lineage(path: Path) -> dict[str, dict[str, Any]]:
    """Read a lineage file: feature name to its entry."""
    return json.loads(path.read_text(encoding="utf-8"))


def expected_window_parameters(
    params: FeaturesParams,
) -> dict[str, dict[str, int]]:
    """Return the window and delay parameters that each windowed feature must carry.

    The values are taken from ``params`` by the feature naming rule, not from
    ``describe_features``, so a lineage writer that drifts from params.yaml is
    caught. Features without a window are absent from the result and must carry
    none of ``WINDOW_KEYS``.

    Returns:
        Feature name to ``{parameter: value}``, with parameters from ``WINDOW_KEYS``.
    """
    expected: dict[str, dict[str, int]] = {}
    for hours in params.windows_hours:
        expected[f"card_count_{hours}h"] = {"window_hours": hours}
        expected[f"card_amount_sum_{hours}h"] = {"window_hours": hours}
    for hours in params.distinct_windows_hours:
        for name in DISTINCT_ATTRIBUTES:
            expected[f"card_distinct_{name}_{hours}h"] = {"window_hours": hours}
    for hours in params.new_value_windows_hours:
        for name in NEW_VALUE_ATTRIBUTES:
            expected[f"card_new_{name}_{hours}h"] = {"window_hours": hours}
    for hours in params.merchant_windows_hours:
        expected[f"merchant_count_{hours}h"] = {"window_hours": hours}
    for days in params.merchant_fraud_windows_days:
        expected[f"merchant_fraud_rate_{days}d"] = {
            "window_days": days,
            "label_delay_days": params.label_delay_days,
        }
    return expected


def registry_feature_views(store: FeatureStore) -> dict[str, set[str]]:
    """List the feature views of a Feast registry with the names of their features.

    Args:
        store: An applied Feast store; the views are read from its registry.

    Returns:
        Feature view name to the names of its fields, on-demand views included.
    """
    views: dict[str, set[str]] = {}
    for view in store.list_feature_views():
        views[view.name] = {field.name for field in view.features}
    for view in store.list_on_demand_feature_views():
        views[view.name] = {field.name for field in view.features}
    return views


def check_lineage(
    lineage: Mapping[str, Mapping[str, Any]],
    *,
    model_features: Iterable[str],
    feature_views: Mapping[str, set[str]],
    params: FeaturesParams,
) -> list[str]:
    """Compare a lineage file with the model, the Feast registry and params.yaml.

    Args:
        lineage: Feature name to entry, as ``read_lineage`` returns it.
        model_features: Input columns of the model.
        feature_views: Registry views and their feature names, as
            ``registry_feature_views`` returns them.
        params: The ``features`` section of params.yaml.

    Returns:
        One sentence per problem, empty when the lineage is complete and agrees.
        A problem is one of: a model feature without an entry, an entry for a
        feature the model does not use, or an entry without one of ``ENTRY_KEYS``.
        It may also be a feature view or online source that the registry lacks,
        a view without the feature, or a window or delay that differs from
        params.yaml.
    """
    model_features = list(model_features)
    problems = [
        f"model feature {name!r} has no lineage entry: rebuild lineage.json with "
        "the build_features stage"
        for name in model_features
        if name not in lineage
    ]
    problems += [
        f"lineage entry {name!r} is not a model feature: rebuild lineage.json with "
        "the params.yaml the model was trained with"
        for name in lineage
        if name not in model_features
    ]
    expected = expected_window_parameters(params)
    for name in model_features:
        entry = lineage.get(name)
        if entry is None:
            continue
        problems += _check_entry_keys(name, entry)
        problems += _check_views(name, entry, feature_views)
        problems += _check_windows(name, entry, expected.get(name, {}))
    if problems:
        logger.warning("lineage check found %d problem(s)", len(problems))
    return problems


def raise_for_lineage(problems: list[str]) -> None:
    """Raise LineageError listing ``problems`` unless the list is empty."""
    if problems:
        raise LineageError(problems)


def _check_entry_keys(name: str, entry: Mapping[str, Any]) -> list[str]:
    missing = [key for key in ENTRY_KEYS if key not in entry]
    if not missing:
        return []
    return [f"lineage entry {name!r} has no {missing} key(s); rebuild lineage.json"]


def _check_views(
    name: str, entry: Mapping[str, Any], feature_views: Mapping[str, set[str]]
) -> list[str]:
    problems = []
    view = entry.get("feature_view")
    if view not in feature_views:
        problems.append(
            f"lineage entry {name!r} names feature view {view!r}, which is not in "
            f"the Feast registry (views there: {sorted(feature_views)}); apply the "
            "definitions or fix the lineage writer"
        )
    elif name not in feature_views[view]:
        problems.append(
            f"lineage entry {name!r} names feature view {view!r}, which has no "
            f"feature {name!r}; apply the definitions built from feature_spec.json"
        )
    online = entry.get("online_source")
    if online != REQUEST_SOURCE and online not in feature_views:
        problems.append(
            f"lineage entry {name!r} names online source {online!r}, which is "
            f"neither {REQUEST_SOURCE!r} nor a feature view in the Feast registry"
        )
    return problems


def _check_windows(
    name: str, entry: Mapping[str, Any], expected: Mapping[str, int]
) -> list[str]:
    parameters = entry.get("parameters") or {}
    problems = []
    for key in WINDOW_KEYS:
        actual = parameters.get(key)
        expected_value = expected.get(key)
        if actual != expected_value:
            problems.append(
                f"lineage entry {name!r} has {key}={actual!r} but params.yaml "
                f"(features section) gives {expected_value!r}; rebuild features "
                "with the current params.yaml"
            )
    return problems
