"""Teardown of one stack: everything the project created, found by name.

Resources are found by service and name prefix (``<project>-<environment>-``), not
by tags alone, so that a resource whose tags were lost is still found. The only
resources without a usable name are the KMS keys, found through their aliases, and
the account's GitHub OIDC provider, deleted only when its tags name this stack.

The order is: the deploy's SageMaker resources and SSM parameter, then
``terraform destroy`` when asked, then a sweep of whatever still carries the
prefix, then a final inventory. The state bucket stays unless ``include_state``.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from cardfraud.deploy.aws import AwsTarget

logger = logging.getLogger(__name__)

KEY_DELETION_DAYS = 7


class TeardownError(RuntimeError):
    """Teardown left resources of the stack behind, or could not run."""


@dataclass(frozen=True)
class Found:
    """One resource of the stack: its service, kind and identifier."""

    service: str
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.service} {self.kind} {self.name}"


@dataclass
class TeardownReport:
    """The outcome of a teardown: resources deleted, kept and remaining."""

    dry_run: bool
    deleted: list[str] = field(default_factory=list)
    remaining: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    terraform: str = "not run"


@dataclass(frozen=True)
class Stack:
    """Names that identify one stack in an account.

    Attributes:
        project: Project name, e.g. ``cardfraud``.
        environment: Environment, e.g. ``dev``.
        feast_tables: DynamoDB tables that Feast created, by exact name.
        state_bucket: Terraform state bucket, kept unless teardown is told
            otherwise; None when there is none to keep.
    """

    project: str
    environment: str
    feast_tables: tuple[str, ...] = ()
    state_bucket: str | None = None

    @property
    def prefix(self) -> str:
        """Name prefix of the stack's resources, ``<project>-<environment>-``."""
        return f"{self.project}-{self.environment}-"

    @property
    def log_group_prefixes(self) -> tuple[str, ...]:
        """Log group name prefixes: SageMaker endpoints, Lambda and API Gateway."""
        return (
            f"/aws/sagemaker/Endpoints/{self.prefix}",
            f"/aws/lambda/{self.prefix}",
            f"/aws/apigateway/{self.prefix}",
        )


def _pages(client: Any, operation: str, key: str, **params: Any) -> Iterator[Any]:
    paginator = client.get_paginator(operation)
    for page in paginator.paginate(**params):
        yield from page.get(key, [])


class Sweeper:
    """Find and delete a stack's resources through boto3."""

    def __init__(self, target: AwsTarget, stack: Stack) -> None:
        self.target = target
        self.stack = stack
        self._clients: dict[str, Any] = {}
        self.account_id = target.client("sts").get_caller_identity()["Account"]

    def client(self, service: str) -> Any:
        """Return the client for ``service`` on the target, created once."""
        if service not in self._clients:
            self._clients[service] = self.target.client(service)
        return self._clients[service]

    # --- Finding ---

    def find(self) -> list[Found]:
        """Return every resource of the stack that exists now, state bucket aside."""
        finders: list[Callable[[], Iterator[Found]]] = [
            self.find_sagemaker,
            self.find_parameters,
            self.find_alarms,
            self.find_schedules,
            self.find_functions,
            self.find_apis,
            self.find_log_groups,
            self.find_repositories,
            self.find_tables,
            self.find_buckets,
            self.find_topics,
            self.find_budgets,
            self.find_roles,
            self.find_oidc_providers,
            self.find_keys,
        ]
        return [item for finder in finders for item in finder()]

    def find_sagemaker(self) -> Iterator[Found]:
        sagemaker = self.client("sagemaker")
        prefix = self.stack.prefix
        for kind, operation, key, name_key in (
            ("endpoint", "list_endpoints", "Endpoints", "EndpointName"),
            (
                "endpoint-config",
                "list_endpoint_configs",
                "EndpointConfigs",
                "EndpointConfigName",
            ),
            ("model", "list_models", "Models", "ModelName"),
        ):
            for item in _pages(sagemaker, operation, key, NameContains=prefix):
                if item[name_key].startswith(prefix):
                    yield Found("sagemaker", kind, item[name_key])

    def find_parameters(self) -> Iterator[Found]:
        path = f"/{self.stack.prefix.rstrip('-')}"
        ssm = self.client("ssm")
        for item in _pages(
            ssm, "get_parameters_by_path", "Parameters", Path=path, Recursive=True
        ):
            yield Found("ssm", "parameter", item["Name"])

    def find_alarms(self) -> Iterator[Found]:
        cloudwatch = self.client("cloudwatch")
        for item in _pages(
            cloudwatch,
            "describe_alarms",
            "MetricAlarms",
            AlarmNamePrefix=self.stack.prefix,
        ):
            yield Found("cloudwatch", "alarm", item["AlarmName"])

    def find_schedules(self) -> Iterator[Found]:
        scheduler = self.client("scheduler")
        for item in _pages(
            scheduler, "list_schedules", "Schedules", NamePrefix=self.stack.prefix
        ):
            yield Found("scheduler", "schedule", item["Name"])

    def find_functions(self) -> Iterator[Found]:
        for item in _pages(self.client("lambda"), "list_functions", "Functions"):
            if item["FunctionName"].startswith(self.stack.prefix):
                yield Found("lambda", "function", item["FunctionName"])

    def find_apis(self) -> Iterator[Found]:
        apis = self.client("apigatewayv2").get_apis().get("Items", [])
        for item in apis:
            if item["Name"].startswith(self.stack.prefix):
                yield Found("apigatewayv2", "api", f"{item['ApiId']} {item['Name']}")

    def find_log_groups(self) -> Iterator[Found]:
        logs = self.client("logs")
        for prefix in self.stack.log_group_prefixes:
            for item in _pages(
                logs, "describe_log_groups", "logGroups", logGroupNamePrefix=prefix
            ):
                yield Found("logs", "log-group", item["logGroupName"])

    def find_repositories(self) -> Iterator[Found]:
        for item in _pages(self.client("ecr"), "describe_repositories", "repositories"):
            if item["repositoryName"].startswith(self.stack.prefix):
                yield Found("ecr", "repository", item["repositoryName"])

    def find_tables(self) -> Iterator[Found]:
        for name in _pages(self.client("dynamodb"), "list_tables", "TableNames"):
            if name.startswith(self.stack.prefix) or name in self.stack.feast_tables:
                yield Found("dynamodb", "table", name)

    def find_buckets(self) -> Iterator[Found]:
        for item in self.client("s3").list_buckets().get("Buckets", []):
            if item["Name"].startswith(self.stack.prefix):
                yield Found("s3", "bucket", item["Name"])

    def find_topics(self) -> Iterator[Found]:
        for item in _pages(self.client("sns"), "list_topics", "Topics"):
            if item["TopicArn"].rsplit(":", 1)[-1].startswith(self.stack.prefix):
                yield Found("sns", "topic", item["TopicArn"])

    def find_budgets(self) -> Iterator[Found]:
        answer = self.client("budgets").describe_budgets(AccountId=self.account_id)
        for item in answer.get("Budgets", []):
            if item["BudgetName"].startswith(self.stack.prefix):
                yield Found("budgets", "budget", item["BudgetName"])

    def find_roles(self) -> Iterator[Found]:
        for item in _pages(self.client("iam"), "list_roles", "Roles"):
            if item["RoleName"].startswith(self.stack.prefix):
                yield Found("iam", "role", item["RoleName"])

    def find_oidc_providers(self) -> Iterator[Found]:
        iam = self.client("iam")
        providers = iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
        for item in providers:
            arn = item["Arn"]
            tags = {
                t["Key"]: t["Value"]
                for t in iam.list_open_id_connect_provider_tags(
                    OpenIDConnectProviderArn=arn
                ).get("Tags", [])
            }
            if (
                tags.get("project") == self.stack.project
                and tags.get("environment") == self.stack.environment
            ):
                yield Found("iam", "oidc-provider", arn)

    def find_keys(self) -> Iterator[Found]:
        kms = self.client("kms")
        for alias in _pages(kms, "list_aliases", "Aliases"):
            name = alias["AliasName"]
            if not name.startswith(f"alias/{self.stack.prefix}"):
                continue
            key_id = alias.get("TargetKeyId")
            if key_id is None:
                continue
            state = kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"]
            if state != "PendingDeletion":
                yield Found("kms", "key", f"{name} {key_id}")

    def find_state_bucket(self) -> Found | None:
        """Return the state bucket when it exists."""
        name = self.stack.state_bucket
        if not name:
            return None
        try:
            self.client("s3").head_bucket(Bucket=name)
        except ClientError:
            return None
        return Found("s3", "bucket", name)

    # --- Deleting ---

    def delete(self, item: Found) -> None:
        """Delete one resource and what must go with it (images, object versions)."""
        handlers = {
            ("sagemaker", "endpoint"): lambda: self.client("sagemaker").delete_endpoint(
                EndpointName=item.name
            ),
            ("sagemaker", "endpoint-config"): lambda: self.client(
                "sagemaker"
            ).delete_endpoint_config(EndpointConfigName=item.name),
            ("sagemaker", "model"): lambda: self.client("sagemaker").delete_model(
                ModelName=item.name
            ),
            ("ssm", "parameter"): lambda: self.client("ssm").delete_parameter(
                Name=item.name
            ),
            ("cloudwatch", "alarm"): lambda: self.client("cloudwatch").delete_alarms(
                AlarmNames=[item.name]
            ),
            ("scheduler", "schedule"): lambda: self.client("scheduler").delete_schedule(
                Name=item.name
            ),
            ("lambda", "function"): lambda: self.client("lambda").delete_function(
                FunctionName=item.name
            ),
            ("apigatewayv2", "api"): lambda: self.client("apigatewayv2").delete_api(
                ApiId=item.name.split(" ", 1)[0]
            ),
            ("logs", "log-group"): lambda: self.client("logs").delete_log_group(
                logGroupName=item.name
            ),
            ("ecr", "repository"): lambda: self.client("ecr").delete_repository(
                repositoryName=item.name, force=True
            ),
            ("dynamodb", "table"): lambda: self.client("dynamodb").delete_table(
                TableName=item.name
            ),
            ("s3", "bucket"): lambda: self.delete_bucket(item.name),
            ("sns", "topic"): lambda: self.client("sns").delete_topic(
                TopicArn=item.name
            ),
            ("budgets", "budget"): lambda: self.client("budgets").delete_budget(
                AccountId=self.account_id, BudgetName=item.name
            ),
            ("iam", "role"): lambda: self.delete_role(item.name),
            ("iam", "oidc-provider"): lambda: self.client(
                "iam"
            ).delete_open_id_connect_provider(OpenIDConnectProviderArn=item.name),
            ("kms", "key"): lambda: self.delete_key(item.name),
        }
        handlers[(item.service, item.kind)]()
        logger.info("deleted %s", item)

    def delete_bucket(self, name: str) -> None:
        """Delete every object version and delete marker, then the bucket."""
        s3 = self.client("s3")
        paginator = s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=name):
            entries = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            if entries:
                s3.delete_objects(
                    Bucket=name, Delete={"Objects": entries, "Quiet": True}
                )
        s3.delete_bucket(Bucket=name)

    def delete_role(self, name: str) -> None:
        """Remove a role's inline and attached policies, then the role."""
        iam = self.client("iam")
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            iam.delete_role_policy(RoleName=name, PolicyName=policy)
        attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
        for policy in attached:
            iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
        iam.delete_role(RoleName=name)

    def delete_key(self, label: str) -> None:
        """Delete a key's alias and schedule the key's deletion (KMS waits 7 days)."""
        alias, key_id = label.split(" ", 1)
        kms = self.client("kms")
        kms.delete_alias(AliasName=alias)
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=KEY_DELETION_DAYS)


def deploy_owned_first(found: list[Found]) -> list[Found]:
    """Order deletions: endpoints before their configurations, before models."""
    order = {"endpoint": 0, "endpoint-config": 1, "model": 2}
    return sorted(found, key=lambda item: order.get(item.kind, 3))


def run_terraform_destroy(folder: Path) -> str:
    """Run ``terraform destroy`` in ``folder`` and return a one-line outcome.

    Raises:
        TeardownError: Terraform is not installed or the destroy failed.
    """
    binary = shutil.which("terraform")
    if binary is None:
        raise TeardownError(
            "terraform not found on PATH; install Terraform 1.11 or later, or pass "
            "--no-terraform to delete the platform by name only"
        )
    completed = subprocess.run(
        [binary, f"-chdir={folder}", "destroy", "-auto-approve", "-input=false"],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise TeardownError(
            f"terraform destroy failed with code {completed.returncode}: "
            f"{completed.stderr.strip()[-2000:]}"
        )
    return "destroyed"


def teardown(
    target: AwsTarget,
    stack: Stack,
    *,
    dry_run: bool = False,
    include_state: bool = False,
    terraform_folder: Path | None = None,
) -> TeardownReport:
    """Delete the stack and check that nothing of it remains.

    Args:
        terraform_folder: Folder to run ``terraform destroy`` in; None skips it and
            the sweep deletes the platform by name.
        include_state: Delete the Terraform state bucket too.

    Raises:
        TeardownError: Something of the stack remains after the sweep; the message
            lists it.
    """
    sweeper = Sweeper(target, stack)
    report = TeardownReport(dry_run=dry_run)
    state = sweeper.find_state_bucket()
    if state is not None and not include_state:
        report.kept.append(str(state))

    if dry_run:
        found = deploy_owned_first(sweeper.find())
        if state is not None and include_state:
            found.append(state)
        report.remaining = [str(item) for item in found]
        report.terraform = "would run" if terraform_folder else "skipped"
        return report

    deploy_owned = [
        item for item in deploy_owned_first(sweeper.find_sagemaker())
    ] + list(sweeper.find_parameters())
    for item in deploy_owned:
        sweeper.delete(item)
        report.deleted.append(str(item))

    if terraform_folder is not None:
        report.terraform = run_terraform_destroy(terraform_folder)
    else:
        report.terraform = "skipped"

    for item in deploy_owned_first(sweeper.find()):
        sweeper.delete(item)
        report.deleted.append(str(item))
    if state is not None and include_state:
        sweeper.delete_bucket(state.name)
        report.deleted.append(str(state))

    remaining = sweeper.find()
    if include_state and sweeper.find_state_bucket() is not None:
        remaining.append(Found("s3", "bucket", str(stack.state_bucket)))
    report.remaining = [str(item) for item in remaining]
    if remaining:
        raise TeardownError(
            "teardown left resources of the stack behind: "
            + "; ".join(report.remaining)
        )
    return report
