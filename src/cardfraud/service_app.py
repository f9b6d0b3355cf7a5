"""HTTP routes of the scoring service, as a FastAPI app that BentoML mounts.

Routes: ``POST /score``, ``POST /score/batch``, ``GET /explanations/{id}`` (JSON or
HTML, bearer token), the SageMaker contract ``GET /ping`` and ``POST /invocations``,
and ``GET /readyz`` with the model version and store health. Request bodies are
parsed here, so every bad input gets a 4xx whose body names the field and the fix,
and no validation error reaches the framework's error logging.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from cardfraud.audit import AuditBacklogError
from cardfraud.explanations import build_explanation, render_html, split_thresholds
from cardfraud.online import TransactionConflictError
from cardfraud.service_metrics import ServiceMetrics
from cardfraud.service_requests import (
    RequestError,
    build_transaction_model,
    check_json_content_type,
    expected_value,
    is_csv,
    parse_invocation,
    parse_json_body,
    validate_batch,
    validate_transaction,
)
from cardfraud.serving import ScoringCore, ServiceSettings

logger = logging.getLogger(__name__)

INVOCATION_AUTH = ("token", "iam")
REQUEST_FIELDS = frozenset(
    {
        "body",
        "header",
        "transactions",
        "transaction",
        "explanation",
        "transaction_id",
        "format",
        "Content-Type",
        "Authorization",
    }
)
"""Names of rejected request parts other than transaction fields."""


def metric_field(field_path: str, known: frozenset[str]) -> str:
    """Return the rejection counter's ``field`` label for a problem's field path.

    Batch indexes and CSV row numbers are dropped and a name the service does not
    define becomes ``other``, so clients cannot add label values to ``/metrics``.
    """
    parts = [
        part
        for part in field_path.replace(" ", ".").split(".")
        if part and not part.isdigit() and part != "row"
    ]
    name = parts[-1] if parts else "body"
    return name if name in known else "other"


@dataclass
class ServiceState:
    """What the routes need: the scoring core, settings and metrics.

    Attributes:
        core: The loaded scoring core.
        settings: The service settings.
        metrics: Prometheus metrics, or None to record none.
        invocation_auth: ``token`` makes explanation requests on ``/invocations``
            need the bearer token; ``iam`` trusts the caller, as behind a SageMaker
            endpoint whose invocations AWS IAM already authorised.
        thresholds_by_feature: Split thresholds for counterfactual search.
    """

    core: ScoringCore
    settings: ServiceSettings
    metrics: ServiceMetrics | None = None
    invocation_auth: str = "token"
    thresholds_by_feature: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.invocation_auth not in INVOCATION_AUTH:
            raise ValueError(
                f"CARDFRAUD_INVOCATIONS_AUTH={self.invocation_auth!r} is not one of "
                f"{INVOCATION_AUTH}; set token (default) or iam"
            )
        if not self.thresholds_by_feature:
            self.thresholds_by_feature = split_thresholds(self.core.served)


def create_app(get_state: Callable[[], ServiceState], *, max_batch: int) -> FastAPI:
    """Build the FastAPI app whose routes call ``get_state()`` per request.

    Args:
        get_state: Returns the worker's state; it is created after the app, when
            the service starts.
        max_batch: Largest batch, shown in the OpenAPI schema.
    """
    transaction_model = build_transaction_model()
    known_fields = frozenset(transaction_model.model_fields) | REQUEST_FIELDS
    app = FastAPI(
        title="card-fraud scorer",
        description="Scores card transactions, explains decisions, keeps an audit log.",
        docs_url=None,
        redoc_url=None,
    )
    transaction_schema = {"$ref": "#/components/schemas/TransactionRequest"}
    body = _openapi_body

    @app.post(
        "/score",
        openapi_extra=body(transaction_schema),
        summary="Score one transaction",
    )
    def score(request: Request, request_body: bytes = _raw_body()) -> Response:
        state = get_state()
        check_json_content_type(request.headers.get("content-type"))
        value = parse_json_body(request_body, max_bytes=state.settings.max_body_bytes)
        transaction = validate_transaction(transaction_model, value)
        return JSONResponse(_score_one(state, transaction))

    @app.post(
        "/score/batch",
        openapi_extra=body(
            {
                "type": "object",
                "required": ["transactions"],
                "additionalProperties": False,
                "properties": {
                    "transactions": {
                        "type": "array",
                        "items": transaction_schema,
                        "minItems": 1,
                        "maxItems": max_batch,
                    }
                },
            }
        ),
        summary="Score a bounded list of transactions in order",
    )
    def score_batch(request: Request, request_body: bytes = _raw_body()) -> Response:
        state = get_state()
        check_json_content_type(request.headers.get("content-type"))
        value = parse_json_body(request_body, max_bytes=state.settings.max_body_bytes)
        transactions = validate_batch(
            transaction_model, value, max_batch=state.settings.max_batch
        )
        results = [_score_one(state, item) for item in transactions]
        return JSONResponse({"results": results})

    @app.get("/explanations/{transaction_id}", summary="Explain a past decision")
    def explanation(transaction_id: str, request: Request, format: str = "json"):
        state = get_state()
        _authorize(state, request.headers.get("authorization"))
        if format not in ("json", "html"):
            raise RequestError(
                422,
                [
                    {
                        "field": "format",
                        "message": f"unknown format {format!r}",
                        "fix": "send format=json or format=html, or omit it",
                    }
                ],
            )
        document = _explain(state, transaction_id)
        wants_html = format == "html" or (
            format == "json"
            and "text/html" in request.headers.get("accept", "")
            and "application/json" not in request.headers.get("accept", "")
        )
        if wants_html:
            return HTMLResponse(render_html(document))
        return JSONResponse(document)

    @app.get("/ping", summary="SageMaker health check")
    def ping() -> Response:
        state = get_state()
        return JSONResponse(
            {"status": "ok", "model_version": state.core.served.version}
        )

    @app.post(
        "/invocations",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                {
                                    "type": "object",
                                    "required": ["transaction"],
                                    "properties": {"transaction": transaction_schema},
                                    "additionalProperties": False,
                                },
                                {
                                    "type": "object",
                                    "required": ["explanation"],
                                    "properties": {
                                        "explanation": {
                                            "type": "object",
                                            "required": ["transaction_id"],
                                            "properties": {
                                                "transaction_id": {"type": "string"}
                                            },
                                        }
                                    },
                                    "additionalProperties": False,
                                },
                            ]
                        }
                    },
                    "text/csv": {"schema": {"type": "string"}},
                },
            }
        },
        summary="SageMaker invocation: score JSON or CSV, or explain an id",
    )
    def invocations(request: Request, request_body: bytes = _raw_body()) -> Response:
        state = get_state()
        parsed = parse_invocation(
            transaction_model,
            request_body,
            request.headers.get("content-type", ""),
            max_batch=state.settings.max_batch,
            max_bytes=state.settings.max_body_bytes,
        )
        if parsed.explain_id is not None:
            if state.invocation_auth == "token":
                _authorize(state, request.headers.get("authorization"))
            return JSONResponse(_explain(state, parsed.explain_id))
        results = [_score_one(state, item) for item in parsed.transactions]
        if len(results) == 1 and not is_csv(request.headers.get("content-type")):
            return JSONResponse(results[0])
        return JSONResponse({"results": results})

    @app.get("/readyz", summary="Readiness: model version and store health")
    def readyz() -> Response:
        state = get_state()
        health = state.core.store_health()
        audit_ok = health.get("audit_store", {}).get("status", "ok") == "ok"
        online_ok = health["online_store"]["status"] == "ok"
        body = {
            "status": "ready" if online_ok else "degraded",
            "model": state.core.served.describe(),
            "stores": health,
        }
        if not audit_ok:
            body["status"] = "unavailable"
        return JSONResponse(body, status_code=200 if audit_ok else 503)

    @app.exception_handler(RequestError)
    async def request_error(request: Request, error: RequestError) -> Response:
        state = get_state()
        if state.metrics is not None:
            state.metrics.rejected.labels(
                route=_route_of(request.url.path),
                field=metric_field(error.problems[0]["field"], known_fields),
            ).inc()
        logger.info(
            "rejected %s %s with %d: %s",
            request.method,
            request.url.path,
            error.status,
            error,
        )
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        return JSONResponse(error.to_json(), status_code=error.status, headers=headers)

    @app.exception_handler(AuditBacklogError)
    async def audit_backlog(request: Request, error: AuditBacklogError) -> Response:
        state = get_state()
        if state.metrics is not None:
            state.metrics.audit_errors.inc()
        logger.error("decision not returned: %s", error)
        return JSONResponse(
            {
                "error": f"the decision could not be recorded: {error}",
                "problems": [],
            },
            status_code=503,
            headers={"Retry-After": "1"},
        )

    app.add_middleware(_MetricsMiddleware, get_state=get_state)
    openapi_components(app, transaction_model)
    return app


def _raw_body() -> Any:
    from fastapi import Depends

    async def read(request: Request) -> bytes:
        return await request.body()

    return Depends(read)


def _openapi_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    }


def _score_one(state: ServiceState, transaction: dict[str, Any]) -> dict[str, Any]:
    try:
        response = state.core.score(transaction)
    except TransactionConflictError as error:
        raise RequestError(
            409,
            [
                {
                    "field": "transaction_id",
                    "message": str(error),
                    "fix": "send a retry with the fields of the first request, or "
                    "give a new transaction its own transaction_id",
                }
            ],
        ) from None
    except ValueError as error:
        name = _field_in(str(error))
        fix = f"send {name} as {expected_value(name)}"
        raise RequestError(
            422, [{"field": name, "message": str(error), "fix": fix}]
        ) from None
    if state.metrics is not None:
        state.metrics.record_decision(response)
    logger.info(
        "transaction %s: %s, score %.6f, model %s%s",
        response["transaction_id"],
        response["decision"],
        response["score"],
        response["model_version"],
        " (degraded)" if response["degraded"] else "",
        extra={
            "transaction_id": response["transaction_id"],
            "decision": response["decision"],
            "score": response["score"],
            "degraded": response["degraded"],
        },
    )
    return response


def _field_in(message: str) -> str:
    for name in ("timestamp", "amount_minor"):
        if f"'{name}'" in message:
            return name
    return "body"


def _authorize(state: ServiceState, header: str | None) -> None:
    token = state.settings.explanation_token
    if token is None:
        raise RequestError(
            403,
            [
                {
                    "field": "Authorization",
                    "message": "explanations are disabled on this service",
                    "fix": "set CARDFRAUD_EXPLANATION_TOKEN on the service",
                }
            ],
        )
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        raise _Unauthorized()


class _Unauthorized(RequestError):
    def __init__(self) -> None:
        super().__init__(
            401,
            [
                {
                    "field": "Authorization",
                    "message": "missing or wrong bearer token",
                    "fix": "send 'Authorization: Bearer <token>' with the token the "
                    "service was started with",
                }
            ],
        )


def _explain(state: ServiceState, transaction_id: str) -> dict[str, Any]:
    audit = state.core.audit
    if audit is None:
        raise RequestError(
            404,
            [
                {
                    "field": "transaction_id",
                    "message": "this service keeps no audit log",
                    "fix": "start the service with an audit store",
                }
            ],
        )
    record = audit.store.latest(transaction_id)
    if record is None and audit.pending:
        audit.flush(timeout_s=2.0)
        record = audit.store.latest(transaction_id)
    if record is None:
        raise RequestError(
            404,
            [
                {
                    "field": "transaction_id",
                    "message": f"no decision on transaction {transaction_id!r}",
                    "fix": "check the id; a decision is stored within "
                    f"{state.settings.audit_flush_ms:g} ms of its response",
                }
            ],
        )
    return build_explanation(
        record,
        state.core.served,
        thresholds_by_feature=state.thresholds_by_feature,
    )


def _route_of(path: str) -> str:
    if path.startswith("/explanations/"):
        return "/explanations/{transaction_id}"
    known = {"/score", "/score/batch", "/ping", "/invocations", "/readyz"}
    return path if path in known else "other"


class _MetricsMiddleware:
    """Counts requests and times them by route and status (pure ASGI)."""

    def __init__(self, app: Any, get_state: Callable[[], ServiceState]) -> None:
        self.app = app
        self.get_state = get_state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def remember(message: Any) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, remember)
        finally:
            state = self.get_state()
            if state.metrics is not None:
                route = _route_of(scope["path"])
                state.metrics.requests.labels(
                    route=route, status=str(status["code"])
                ).inc()
                state.metrics.latency.labels(route=route).observe(
                    time.perf_counter() - started
                )


def openapi_components(app: FastAPI, transaction_model: Any) -> None:
    """Add the transaction schema to the app's OpenAPI components."""
    schema = app.openapi()
    definitions = transaction_model.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(definitions.pop("$defs", {}))
    components["TransactionRequest"] = definitions
    app.openapi_schema = schema


class RouteToApp:
    """ASGI middleware that sends some paths to another app.

    BentoML answers ``/readyz`` itself, before any mounted app, with an empty body;
    this middleware sends the path to the service's own app instead, which reports
    the model version and store health.

    Args:
        app: The next ASGI app (BentoML's).
        target: The app that answers ``paths``.
        paths: Exact request paths to send to ``target``.
    """

    def __init__(self, app: Any, *, target: Any, paths: tuple[str, ...]) -> None:
        self.app = app
        self.target = target
        self.paths = frozenset(paths)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths:
            await self.target(scope, receive, send)
            return
        await self.app(scope, receive, send)
