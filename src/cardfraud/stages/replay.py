"""Stage replay: score a period of transactions through the scoring core in process.

The champion scores every transaction of the period with the service's own code path
(``ScoringCore``: online state read and update, score, reasons, audit record), not
over HTTP. The online store starts as of the period's first instant, and fraud label
events are fed to it as they become available, so the merchant fraud rates evolve as
they would live. Decisions go to an audit log in the service's format
(``data/replay/audit.db``) and the label events to ``data/replay/label_events.parquet``;
the monitor stage reads both.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import tempfile
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from cardfraud.audit import AuditWriter, SqliteAuditStore
from cardfraud.data import read_transactions
from cardfraud.feature_store import FEATURES_FILE, apply_and_load_state
from cardfraud.monitoring.decisions import LABEL_EVENT_SCHEMA
from cardfraud.online import OnlineFeatures, replay_events
from cardfraud.params import FeaturesParams, MonitorParams, RegisterParams
from cardfraud.paths import Workspace
from cardfraud.served_model import ServedModel
from cardfraud.serving import ScoringCore, ServiceSettings, load_served_model

logger = logging.getLogger(__name__)

REPLAY_FOLDER = ("data", "replay")
AUDIT_FILE = "audit.db"
LABELS_FILE = "label_events.parquet"
LABEL_COLUMNS = ("is_fraud", "label_available_at", "fraud_scenario")


def replay_dir(ws: Workspace) -> Path:
    """Folder of the replay's audit log and label events."""
    return ws.root.joinpath(*REPLAY_FOLDER)


def replay_period(
    params: MonitorParams, served: ServedModel, transactions: pl.DataFrame
) -> tuple[datetime, datetime]:
    """Return the replay's first instant and its end (exclusive), UTC midnights.

    The start is ``monitor.replay_start``, else the champion's test window start;
    the end is ``replay_days`` later, cut at the end of the data.
    """
    if params.replay_start is not None:
        start = datetime.combine(params.replay_start, time(), tzinfo=UTC)
    else:
        start = datetime.fromisoformat(served.model.meta["windows"]["test"]["start"])
    last = transactions["timestamp"].max()
    data_end = datetime.combine(last.date() + timedelta(days=1), time(), tzinfo=UTC)
    end = min(start + timedelta(days=params.replay_days), data_end)
    if end <= start:
        raise ValueError(
            f"monitor.replay_start {start.date()} is at or after the end of the data "
            f"({data_end.date()}); set an earlier replay_start or null"
        )
    return start, end


def prepare_online_store(
    folder: Path,
    ws: Workspace,
    transactions: pl.DataFrame,
    features: FeaturesParams,
    feature_columns: list[str],
    *,
    start: datetime,
) -> OnlineFeatures:
    """Build a Feast repository in ``folder`` whose online state is as of ``start``."""
    replay_ws = Workspace(folder)
    replay_ws.features_dir.mkdir(parents=True, exist_ok=True)
    source = ws.features_dir / FEATURES_FILE
    target = replay_ws.features_dir / FEATURES_FILE
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
    apply_and_load_state(
        replay_ws, transactions, features, feature_columns, cutoff=start
    )
    return OnlineFeatures.from_repo(replay_ws.feature_repo, features)


def replay_period_through_core(
    core: ScoringCore,
    transactions: pl.DataFrame,
    features: FeaturesParams,
    *,
    start: datetime,
    end: datetime,
) -> tuple[int, list[dict[str, Any]]]:
    """Stream the period's transactions and label events through ``core``.

    Returns:
        The number of transactions scored and the label events applied.
    """
    period = transactions.filter(pl.col("timestamp") < end)
    scored = 0
    labels: list[dict[str, Any]] = []
    for kind, event in replay_events(period, features, start=start):
        if kind == "transaction":
            request = {k: v for k, v in event.items() if k not in LABEL_COLUMNS}
            core.score({k: v for k, v in request.items() if v is not None})
            scored += 1
        elif event["label_available_at"] < end:
            core.online.apply_label(**event)
            labels.append(
                {
                    "transaction_id": event["transaction_id"],
                    "label_available_at": event["label_available_at"],
                }
            )
    return scored, labels


def seal_audit_file(path: Path) -> None:
    """Switch a finished audit log from WAL to a rollback journal.

    A read-only SQLite connection to a WAL database still creates its ``-wal`` and
    ``-shm`` files. The monitor stage reads this file, so without the switch it
    would add files to the replay stage's output and DVC would see the replay as
    changed after every run.
    """
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode=DELETE").fetchone()
    finally:
        connection.close()


def run(
    ws: Workspace,
    params: MonitorParams,
    *,
    features: FeaturesParams,
    registry: RegisterParams,
) -> dict[str, Any]:
    """Replay the period through the champion and write the audit log and labels.

    Returns:
        The period, the model version, and the numbers of transactions and label
        events.
    """
    settings = ServiceSettings(
        workspace=ws,
        model_name=registry.model_name,
        model_alias="champion",
        tracking_uri=ws.tracking_uri(),
        features=features,
    )
    served = load_served_model(settings)
    transactions = read_transactions(ws.raw_dir)
    start, end = replay_period(params, served, transactions)
    folder = replay_dir(ws)
    folder.mkdir(parents=True, exist_ok=True)
    for name in (AUDIT_FILE, f"{AUDIT_FILE}-wal", f"{AUDIT_FILE}-shm", LABELS_FILE):
        (folder / name).unlink(missing_ok=True)

    with tempfile.TemporaryDirectory(prefix="cardfraud-replay-") as repo:
        online = prepare_online_store(
            Path(repo),
            ws,
            transactions,
            features,
            served.model.feature_columns,
            start=start,
        )
        store = SqliteAuditStore(folder / AUDIT_FILE)
        core = ScoringCore(
            model=served,
            online=online,
            features=features,
            audit=AuditWriter(store, max_queue=1_000_000),
        )
        try:
            scored, labels = replay_period_through_core(
                core, transactions, features, start=start, end=end
            )
        finally:
            core.close()
            store.close()
    seal_audit_file(folder / AUDIT_FILE)
    pl.DataFrame(labels, schema=LABEL_EVENT_SCHEMA).write_parquet(folder / LABELS_FILE)
    logger.info(
        "replayed %d transaction(s) and %d label event(s) from %s to %s",
        scored,
        len(labels),
        start.isoformat(),
        end.isoformat(),
    )
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "model_version": served.version,
        "transactions": scored,
        "label_events": len(labels),
        "audit_db": str((folder / AUDIT_FILE).relative_to(ws.root)),
    }
