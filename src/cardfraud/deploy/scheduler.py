"""AWS Lambda that stops the scoring endpoint at night and starts it again.

EventBridge Scheduler invokes :func:`handle` with ``{"action": "stop"}`` in the
evening and ``{"action": "start"}`` in the morning. Stopping deletes the endpoint,
which ends its instance charges; the models and endpoint configurations stay, so
blue/green history and rollback are unaffected. Starting recreates the endpoint
from the configuration named in the SSM parameter that every deploy and rollback
writes. This file is deployed on its own, so it imports only the standard library
and boto3.

Settings come from the environment: ``ENDPOINT_NAME`` and
``LIVE_CONFIG_PARAMETER``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import boto3
from botocore.exceptions import ClientError

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)


def endpoint_status(sagemaker: Any, endpoint_name: str) -> str | None:
    """Return the endpoint's status, or None when it does not exist."""
    try:
        return sagemaker.describe_endpoint(EndpointName=endpoint_name)["EndpointStatus"]
    except ClientError as error:
        if "Could not find" in error.response.get("Error", {}).get("Message", ""):
            return None
        raise


def stop(sagemaker: Any, *, endpoint_name: str) -> dict[str, str]:
    """Delete the endpoint when it is in service, failed or out of service.

    An endpoint that is being created or updated is left running, so a deploy in
    progress is never cut short. The next evening's stop deletes it.
    """
    status = endpoint_status(sagemaker, endpoint_name)
    if status is None:
        return {"endpoint": endpoint_name, "result": "absent"}
    if status not in {"InService", "Failed", "OutOfService"}:
        logger.warning("not stopping %s: it is %s", endpoint_name, status)
        return {"endpoint": endpoint_name, "result": f"skipped ({status})"}
    sagemaker.delete_endpoint(EndpointName=endpoint_name)
    logger.info("deleted endpoint %s (was %s)", endpoint_name, status)
    return {"endpoint": endpoint_name, "result": "deleted"}


def start(
    sagemaker: Any, ssm: Any, *, endpoint_name: str, parameter: str
) -> dict[str, str]:
    """Create the endpoint from the last deployed configuration when it is absent.

    Raises:
        LookupError: The SSM parameter does not exist, so no deploy has run yet.
    """
    if endpoint_status(sagemaker, endpoint_name) is not None:
        return {"endpoint": endpoint_name, "result": "already present"}
    try:
        config = ssm.get_parameter(Name=parameter)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound as error:
        raise LookupError(
            f"SSM parameter {parameter} not found: run `cardfraud deploy release` "
            "once before the morning start"
        ) from error
    sagemaker.create_endpoint(EndpointName=endpoint_name, EndpointConfigName=config)
    logger.info("creating endpoint %s from %s", endpoint_name, config)
    return {"endpoint": endpoint_name, "result": f"creating from {config}"}


def handle(event: dict[str, Any], context: Any = None) -> dict[str, str]:
    """Lambda entry point: ``{"action": "stop"}`` or ``{"action": "start"}``."""
    action = event.get("action")
    endpoint_name = os.environ["ENDPOINT_NAME"]
    sagemaker = boto3.client("sagemaker")
    if action == "stop":
        return stop(sagemaker, endpoint_name=endpoint_name)
    if action == "start":
        return start(
            sagemaker,
            boto3.client("ssm"),
            endpoint_name=endpoint_name,
            parameter=os.environ["LIVE_CONFIG_PARAMETER"],
        )
    raise ValueError(f"action is {action!r}; expected 'stop' or 'start'")
