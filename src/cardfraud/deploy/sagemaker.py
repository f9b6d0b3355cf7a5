"""Blue/green deployment of the champion to a SageMaker real-time endpoint.

The deploy command owns the SageMaker models, endpoint configurations and the
endpoint; Terraform owns everything around them. A release creates a model and an
endpoint configuration, then creates the endpoint or updates it blue/green. A canary
share of the new fleet takes traffic first and the rest follows after a baking
period. SageMaker rolls the update back by itself when a rollback alarm fires. The
deploy then smoke-tests ``/invocations`` and rolls back when the answer is wrong.

Every endpoint configuration records the configuration it replaced in the tag
``cardfraud:previous-config``, so ``rollback`` finds the way back without a
separate store. The SSM parameter ``/<prefix>/scorer/live-endpoint-config`` holds
the configuration that should be live; the overnight scheduler recreates the
endpoint from it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from cardfraud.deploy.settings import DeploySettings
from cardfraud.deploy.smoke import SmokeTestError, run_smoke_test

logger = logging.getLogger(__name__)

PREVIOUS_CONFIG_TAG = "cardfraud:previous-config"
MODEL_VERSION_TAG = "cardfraud:model-version"
FAILED_STATUSES = frozenset({"Failed", "UpdateRollbackFailed", "OutOfService"})


class DeployError(RuntimeError):
    """A deploy or rollback did not leave the endpoint as requested."""


@dataclass(frozen=True)
class Release:
    """The model version and image that a deploy puts on the endpoint.

    Attributes:
        model_name: Registered model name in MLflow.
        model_version: Registered version that the image carries, e.g. ``"7"``.
        run_id: MLflow run that logged the version.
        image_uri: ECR image URI of the Bento container with that version.
    """

    model_name: str
    model_version: str
    run_id: str
    image_uri: str


@dataclass
class DeployReport:
    """The outcome of a deploy or rollback, printed as JSON by the command line."""

    action: str
    endpoint_name: str
    endpoint_config_name: str
    previous_config_name: str | None
    dry_run: bool
    model_name: str | None = None
    status: str = "planned"
    steps: list[str] = field(default_factory=list)
    smoke: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the report as plain JSON-ready values."""
        return asdict(self)


def aws_partition(region: str) -> str:
    """Return the ARN partition of a region (``aws``, ``aws-cn`` or ``aws-us-gov``)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def blue_green_config(settings: DeploySettings) -> dict[str, Any]:
    """Return the ``DeploymentConfig`` of a release: canary, then all, with alarms."""
    shifting = settings.blue_green
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {
                    "Type": "CAPACITY_PERCENT",
                    "Value": shifting.canary_percent,
                },
                "WaitIntervalInSeconds": shifting.canary_wait_seconds,
            },
            "TerminationWaitInSeconds": shifting.termination_wait_seconds,
            "MaximumExecutionTimeoutInSeconds": shifting.max_execution_seconds,
        },
        "AutoRollbackConfiguration": {
            "Alarms": [{"AlarmName": name} for name in settings.alarm_names]
        },
    }


def rollback_config(settings: DeploySettings) -> dict[str, Any]:
    """Return the ``DeploymentConfig`` of a rollback: all traffic at once.

    The configuration restored was in service before, so the rollback skips the
    canary and the baking periods to end the bad release quickly.
    """
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "ALL_AT_ONCE",
                "WaitIntervalInSeconds": 0,
            },
            "TerminationWaitInSeconds": 0,
            "MaximumExecutionTimeoutInSeconds": (
                settings.blue_green.max_execution_seconds
            ),
        }
    }


def _is_missing_endpoint(error: ClientError) -> bool:
    details = error.response.get("Error", {})
    return details.get("Code") == "ValidationException" and "Could not find" in str(
        details.get("Message", "")
    )


class Deployer:
    """Deploy, smoke-test and roll back the scoring endpoint of one stack."""

    def __init__(
        self,
        settings: DeploySettings,
        *,
        sagemaker: Any,
        runtime: Any,
        ssm: Any,
        account_id: str,
        cloudwatch: Any = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.sagemaker = sagemaker
        self.runtime = runtime
        self.ssm = ssm
        self.cloudwatch = cloudwatch
        self.account_id = account_id
        self.now = now
        self.sleep = sleep
        self.monotonic = monotonic

    # --- Names and reads ---

    @property
    def execution_role_arn(self) -> str:
        """ARN of the SageMaker execution role that Terraform creates."""
        partition = aws_partition(self.settings.region)
        return (
            f"arn:{partition}:iam::{self.account_id}:role/"
            f"{self.settings.execution_role_name}"
        )

    def release_name(self, release: Release) -> str:
        """Return the name shared by a release's model and endpoint configuration.

        ``<prefix>-scorer-v<version>-<UTC time>``, at most 63 characters as
        SageMaker requires.
        """
        stamp = self.now().astimezone(UTC).strftime("%Y%m%d%H%M%S")
        name = f"{self.settings.endpoint_name}-v{release.model_version}-{stamp}"
        if len(name) > 63:
            raise DeployError(
                f"model name {name!r} is {len(name)} characters, SageMaker allows "
                "63: shorten project or environment in infra/deploy.yaml"
            )
        return name

    def describe_endpoint(self) -> dict[str, Any] | None:
        """Return DescribeEndpoint's response, or None when the endpoint is absent."""
        try:
            return self.sagemaker.describe_endpoint(
                EndpointName=self.settings.endpoint_name
            )
        except ClientError as error:
            if _is_missing_endpoint(error):
                return None
            raise

    def previous_config_of(self, config_name: str) -> str | None:
        """Return the configuration that ``config_name`` replaced, from its tag."""
        arn = self.sagemaker.describe_endpoint_config(EndpointConfigName=config_name)[
            "EndpointConfigArn"
        ]
        tags = self.sagemaker.list_tags(ResourceArn=arn)["Tags"]
        value = next((t["Value"] for t in tags if t["Key"] == PREVIOUS_CONFIG_TAG), "")
        return value or None

    def _tags(self, **extra: str) -> list[dict[str, str]]:
        tags = {
            "project": self.settings.project,
            "environment": self.settings.environment,
            "managed-by": "cardfraud-deploy",
            **extra,
        }
        return [{"Key": key, "Value": value} for key, value in tags.items()]

    def check_rollback_alarms(self) -> None:
        """Check that the rollback alarms exist, so an update can roll back.

        Skipped when the deployer has no CloudWatch client.

        Raises:
            DeployError: An alarm named in the settings does not exist.
        """
        if self.cloudwatch is None:
            return
        names = list(self.settings.alarm_names)
        found = {
            alarm["AlarmName"]
            for alarm in self.cloudwatch.describe_alarms(AlarmNames=names)[
                "MetricAlarms"
            ]
        }
        missing = [name for name in names if name not in found]
        if missing:
            raise DeployError(
                f"rollback alarms {', '.join(missing)} not found; without them a bad "
                "release would not roll back, so apply infra/terraform first"
            )

    # --- Waiting ---

    def wait_in_service(self, *, expected_config: str) -> dict[str, Any]:
        """Poll the endpoint until it is in service, and check its configuration.

        Raises:
            DeployError: The endpoint failed, timed out, disappeared, or came back
                in service on another configuration (SageMaker rolled it back).
        """
        deadline = self.monotonic() + self.settings.wait.timeout_seconds
        while True:
            described = self.describe_endpoint()
            if described is None:
                raise DeployError(
                    f"endpoint {self.settings.endpoint_name} disappeared while "
                    "waiting for it; check the SageMaker console and CloudTrail"
                )
            status = described["EndpointStatus"]
            if status == "InService":
                break
            if status in FAILED_STATUSES:
                raise DeployError(
                    f"endpoint {self.settings.endpoint_name} is {status}: "
                    f"{described.get('FailureReason', 'no failure reason given')}"
                )
            if self.monotonic() > deadline:
                raise DeployError(
                    f"endpoint {self.settings.endpoint_name} still {status} after "
                    f"{self.settings.wait.timeout_seconds:.0f} s; raise "
                    "wait.timeout_seconds or check the SageMaker console"
                )
            logger.info("endpoint %s is %s", self.settings.endpoint_name, status)
            self.sleep(self.settings.wait.poll_seconds)

        live = described["EndpointConfigName"]
        if live != expected_config:
            raise DeployError(
                f"endpoint {self.settings.endpoint_name} is in service on {live}, not "
                f"{expected_config}: SageMaker rolled the update back "
                f"({described.get('FailureReason', 'a rollback alarm fired')})"
            )
        return described

    # --- Deploy ---

    def deploy(self, release: Release, *, dry_run: bool = False) -> DeployReport:
        """Put ``release`` on the endpoint blue/green, smoke-test it, report.

        Raises:
            DeployError: The update failed or rolled back, or the smoke test failed
                (after which the endpoint was rolled back or, on a first deploy,
                deleted).
        """
        name = self.release_name(release)
        current = self.describe_endpoint()
        previous = current["EndpointConfigName"] if current else None
        report = DeployReport(
            action="update" if current else "create",
            endpoint_name=self.settings.endpoint_name,
            endpoint_config_name=name,
            previous_config_name=previous,
            model_name=name,
            dry_run=dry_run,
        )
        report.steps = [
            f"create model {name} from {release.image_uri}",
            f"create endpoint configuration {name} "
            f"({self.settings.endpoint.instance_count} x "
            f"{self.settings.endpoint.instance_type})",
            (
                f"update endpoint {self.settings.endpoint_name} blue/green from "
                f"{previous}: canary {self.settings.blue_green.canary_percent}%, "
                f"rollback alarms {', '.join(self.settings.alarm_names)}"
                if current
                else f"create endpoint {self.settings.endpoint_name}"
            ),
            "smoke-test /invocations (score and explanation)",
            f"record {name} in SSM parameter {self.settings.live_config_parameter}",
        ]
        if dry_run:
            return report

        if current is not None:
            self.check_rollback_alarms()
        self._create_model(name, release)
        self._create_endpoint_config(name, release, previous=previous)
        if current is None:
            self.sagemaker.create_endpoint(
                EndpointName=self.settings.endpoint_name,
                EndpointConfigName=name,
                Tags=self._tags(),
            )
        else:
            self.sagemaker.update_endpoint(
                EndpointName=self.settings.endpoint_name,
                EndpointConfigName=name,
                RetainAllVariantProperties=False,
                DeploymentConfig=blue_green_config(self.settings),
            )
        logger.info("%s endpoint %s with %s", report.action, report.endpoint_name, name)
        self.wait_in_service(expected_config=name)

        try:
            report.smoke = run_smoke_test(
                self.runtime,
                endpoint_name=self.settings.endpoint_name,
                transaction_id=f"smoke-{name}",
                model_version=release.model_version,
                now=self.now(),
            )
        except SmokeTestError as error:
            logger.error("smoke test of %s failed: %s", name, error)
            self._undo_failed_release(previous)
            report.status = "rolled-back" if previous else "deleted"
            raise DeployError(
                f"smoke test of {name} failed ({error}); "
                + (
                    f"the endpoint was rolled back to {previous}"
                    if previous
                    else "the endpoint was deleted, since no earlier configuration "
                    "existed"
                )
            ) from error

        self._record_live(name)
        report.status = "in-service"
        return report

    def _create_model(self, name: str, release: Release) -> None:
        self.sagemaker.create_model(
            ModelName=name,
            ExecutionRoleArn=self.execution_role_arn,
            PrimaryContainer={
                "Image": release.image_uri,
                "Environment": {
                    "CARDFRAUD_MODEL_NAME": release.model_name,
                    "CARDFRAUD_MODEL_VERSION": release.model_version,
                    "CARDFRAUD_MLFLOW_RUN_ID": release.run_id,
                    # The Lambda authorizer checked the caller's token, and IAM
                    # authorises every InvokeEndpoint, so the container trusts
                    # explanation requests on /invocations.
                    "CARDFRAUD_INVOCATIONS_AUTH": "iam",
                },
            },
            Tags=self._tags(**{MODEL_VERSION_TAG: release.model_version}),
        )

    def _create_endpoint_config(
        self, name: str, release: Release, *, previous: str | None
    ) -> None:
        endpoint = self.settings.endpoint
        self.sagemaker.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": endpoint.variant_name,
                    "ModelName": name,
                    "InstanceType": endpoint.instance_type,
                    "InitialInstanceCount": endpoint.instance_count,
                    "InitialVariantWeight": 1.0,
                }
            ],
            Tags=self._tags(
                **{
                    PREVIOUS_CONFIG_TAG: previous or "",
                    MODEL_VERSION_TAG: release.model_version,
                }
            ),
        )

    def _undo_failed_release(self, previous: str | None) -> None:
        if previous is None:
            logger.warning(
                "deleting endpoint %s: its first release failed the smoke test",
                self.settings.endpoint_name,
            )
            self.sagemaker.delete_endpoint(EndpointName=self.settings.endpoint_name)
            return
        self._restore(previous)

    def _restore(self, config_name: str) -> None:
        self.sagemaker.update_endpoint(
            EndpointName=self.settings.endpoint_name,
            EndpointConfigName=config_name,
            RetainAllVariantProperties=False,
            DeploymentConfig=rollback_config(self.settings),
        )
        self.wait_in_service(expected_config=config_name)
        self._record_live(config_name)
        logger.info(
            "endpoint %s restored to %s", self.settings.endpoint_name, config_name
        )

    def _record_live(self, config_name: str) -> None:
        self.ssm.put_parameter(
            Name=self.settings.live_config_parameter,
            Value=config_name,
            Type="String",
            Overwrite=True,
        )

    # --- Rollback ---

    def rollback(self, *, dry_run: bool = False) -> DeployReport:
        """Return the endpoint to the configuration its live one replaced.

        Raises:
            DeployError: The endpoint is absent or not in service, or its live
                configuration records no earlier one.
        """
        current = self.describe_endpoint()
        if current is None:
            raise DeployError(
                f"endpoint {self.settings.endpoint_name} does not exist; there is "
                "nothing to roll back (run deploy to create it)"
            )
        if current["EndpointStatus"] != "InService":
            raise DeployError(
                f"endpoint {self.settings.endpoint_name} is "
                f"{current['EndpointStatus']}; wait until it is InService, then "
                "roll back"
            )
        live = current["EndpointConfigName"]
        previous = self.previous_config_of(live)
        if previous is None:
            raise DeployError(
                f"endpoint configuration {live} records no earlier configuration "
                f"(tag {PREVIOUS_CONFIG_TAG}); it was the first release"
            )
        report = DeployReport(
            action="rollback",
            endpoint_name=self.settings.endpoint_name,
            endpoint_config_name=previous,
            previous_config_name=live,
            dry_run=dry_run,
            steps=[
                f"update endpoint {self.settings.endpoint_name} from {live} to "
                f"{previous}, all traffic at once",
                f"record {previous} in SSM parameter "
                f"{self.settings.live_config_parameter}",
            ],
        )
        if dry_run:
            return report
        self._restore(previous)
        report.status = "in-service"
        return report
