"""JSON log lines for the scoring service.

Each record becomes one JSON object with the time, level, logger, message and any
``extra`` fields the call passed, such as ``transaction_id``, so that a log search
finds every line of one transaction.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    """Format a log record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a JSON object on one line."""
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(*, json_lines: bool, level: int = logging.INFO) -> None:
    """Send the ``cardfraud`` loggers to stderr, as JSON lines or plain text.

    Replaces handlers an earlier call added, so calling it twice is harmless.
    """
    logger = logging.getLogger("cardfraud")
    for handler in list(logger.handlers):
        if getattr(handler, "_cardfraud", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._cardfraud = True  # type: ignore[attr-defined]
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
