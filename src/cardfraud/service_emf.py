"""CloudWatch Embedded Metric Format (EMF) lines of the scoring service's requests.

Nothing can scrape the ``/metrics`` of a container behind a SageMaker endpoint, so
the service can write its figures as EMF log lines, which CloudWatch Logs turns into
metrics. With ``CARDFRAUD_EMF=1`` (the default of ``cardfraud serve --sagemaker``)
``EmfMiddleware`` writes one line to stdout per ``POST`` to ``/score``,
``/score/batch`` or ``/invocations`` that scored transactions or failed with a 5xx.
Rejected bodies (4xx) and explanations score nothing and write no line.

The lines go through the logger ``cardfraud.emf``, whose handler writes the bare
message: CloudWatch Logs reads an EMF document only from a log event that is one
JSON object with nothing before or after it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from cardfraud.monitoring.exporters import SERVICE_NAMESPACE, emf_line

logger = logging.getLogger(__name__)

EMF_ENV = "CARDFRAUD_EMF"
EMF_LOGGER = "cardfraud.emf"
SCORING_ROUTES = frozenset({"/score", "/score/batch", "/invocations"})
MAX_VALUES_PER_METRIC = 100
"""Values of one metric in one EMF line; the aws-embedded-metrics libraries split
longer arrays over several lines at this size (``MAX_DATAPOINTS_PER_METRIC``)."""
SUMMED_METRICS = ("Degraded", "ColdStart", "Approve", "Review", "Decline")


def emf_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Return whether ``CARDFRAUD_EMF`` turns EMF lines on.

    Raises:
        ValueError: The variable is set to something other than 0 or 1.
    """
    value = (os.environ if environ is None else environ).get(EMF_ENV, "").strip()
    if value not in ("", "0", "1"):
        raise ValueError(
            f"{EMF_ENV}={value!r} is not 0 or 1; set 1 to write an EMF line per "
            "scoring request to stdout, or 0 (the default) for none"
        )
    return value == "1"


def configure_emf_logger(stream: IO[str] | None = None) -> logging.Logger:
    """Send ``cardfraud.emf`` to ``stream`` (default stdout) as bare messages.

    The logger does not propagate, so the service's JSON log handler never wraps
    an EMF line. Calling it again replaces the handler it added.
    """
    emf_logger = logging.getLogger(EMF_LOGGER)
    for handler in list(emf_logger.handlers):
        if getattr(handler, "_cardfraud_emf", False):
            emf_logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout if stream is None else stream)
    handler._cardfraud_emf = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(message)s"))
    emf_logger.addHandler(handler)
    emf_logger.setLevel(logging.INFO)
    emf_logger.propagate = False
    return emf_logger


def scored_responses(body: bytes) -> list[dict[str, Any]]:
    """Return the scores in a response body; explanations and errors hold none.

    A score is an object with ``timings_ms``; batch and CSV bodies hold them
    under ``results``.

    Raises:
        ValueError: The body is not JSON.
    """
    document = json.loads(body)
    if not isinstance(document, dict):
        return []
    items = document.get("results", [document])
    return [item for item in items if isinstance(item, dict) and "timings_ms" in item]


def request_emf_lines(
    responses: Sequence[dict[str, Any]],
    *,
    route: str,
    status: int,
    latency_s: float,
    timestamp_ms: int | None = None,
) -> list[str]:
    """Return the EMF line of one request; more only past 100 scores.

    One score gives ``cardfraud.monitoring.exporters.emf_line`` as it is. Several
    give one line with the request's latency, the degraded, cold-start and
    decision counts summed, the scores as an array and ``TransactionIds`` in
    place of ``TransactionId`` and ``Decision``. Scores past the first 100 follow
    in lines that declare only ``Score``. No response (a 5xx) gives the line of
    ``emf_line({})``: an error with no decision.

    Args:
        responses: The scoring core's responses, in request order.
        route: The HTTP route, the line's only dimension.
        status: HTTP status code returned.
        latency_s: Time from request to response, seconds.
        timestamp_ms: Unix time in milliseconds; default now.
    """
    stamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms

    def line_of(response: dict[str, Any]) -> str:
        return emf_line(
            response,
            route=route,
            status=status,
            latency_s=latency_s,
            timestamp_ms=stamp,
        )

    if len(responses) <= 1:
        return [line_of(responses[0] if responses else {})]
    documents = [json.loads(line_of(response)) for response in responses]
    merged = documents[0]
    for name in SUMMED_METRICS:
        merged[name] = sum(document[name] for document in documents)
    scores = [document["Score"] for document in documents]
    merged["Score"] = scores[:MAX_VALUES_PER_METRIC]
    merged["TransactionIds"] = [document["TransactionId"] for document in documents]
    del merged["TransactionId"], merged["Decision"]
    lines = [json.dumps(merged, sort_keys=True, separators=(",", ":"))]
    for start in range(MAX_VALUES_PER_METRIC, len(scores), MAX_VALUES_PER_METRIC):
        lines.append(
            score_line(
                scores[start : start + MAX_VALUES_PER_METRIC],
                route=route,
                timestamp_ms=stamp,
            )
        )
    return lines


def score_line(scores: list[float], *, route: str, timestamp_ms: int) -> str:
    """Return an EMF line that carries only more ``Score`` values of a request."""
    document = {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": SERVICE_NAMESPACE,
                    "Dimensions": [["Route"]],
                    "Metrics": [{"Name": "Score", "Unit": "None"}],
                }
            ],
        },
        "Route": route,
        "Score": scores,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


class EmfMiddleware:
    """Writes the EMF line of each scoring request (pure ASGI).

    Args:
        app: The next ASGI app.
        emf_logger: Logger of the lines; default ``configure_emf_logger()``.
        clock: Seconds of a monotonic clock, for the latency.
    """

    def __init__(
        self,
        app: Any,
        *,
        emf_logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.app = app
        self.emf_logger = emf_logger or configure_emf_logger()
        self.clock = clock

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or scope["path"] not in SCORING_ROUTES
        ):
            await self.app(scope, receive, send)
            return
        started = self.clock()
        response: dict[str, Any] = {"status": 500, "body": []}

        async def capture(message: Any) -> None:
            if message["type"] == "http.response.start":
                response["status"] = message["status"]
            elif message["type"] == "http.response.body":
                response["body"].append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            self.write(
                scope["path"],
                response["status"],
                b"".join(response["body"]),
                self.clock() - started,
            )

    def write(self, route: str, status: int, body: bytes, latency_s: float) -> None:
        """Write the request's line: scores of a 200, or an error of a 5xx."""
        if status >= 500:
            responses: list[dict[str, Any]] = []
        elif status == 200:
            try:
                responses = scored_responses(body)
            except ValueError as error:
                logger.warning(
                    "no EMF line for %s: the response body is not JSON (%s)",
                    route,
                    error,
                )
                return
            if not responses:
                return
        else:
            return
        for line in request_emf_lines(
            responses, route=route, status=status, latency_s=latency_s
        ):
            self.emf_logger.info(line)
