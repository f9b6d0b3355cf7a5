"""Teardown against a moto server on 127.0.0.1.

Terraform cannot run here, so each test first creates the platform's resources in
moto with boto3, under the names the Terraform gives them, plus what deploys
created. Teardown then runs without ``terraform destroy`` and must leave nothing of
the stack: its sweep by name is what removes the platform.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest

from cardfraud.deploy.aws import AwsTarget
from cardfraud.deploy.sagemaker import Deployer, Release
from cardfraud.deploy.settings import load_settings
from cardfraud.deploy.teardown import Stack, Sweeper, TeardownError, teardown

ACCOUNT_ID = "123456789012"
PREFIX = "cardfraud-dev"
TERRAFORM_DIR = Path(__file__).resolve().parents[2] / "infra" / "terraform"
STATE_BUCKET = f"cardfraud-tfstate-{ACCOUNT_ID}"
FEAST_TABLES = ("cardfraud.card_state", "cardfraud.merchant_state")
STACK = Stack(
    project="cardfraud",
    environment="dev",
    feast_tables=FEAST_TABLES,
    state_bucket=STATE_BUCKET,
)

# (module, name expression in the Terraform, the name it gives for cardfraud-dev)
TERRAFORM_NAMES = [
    ("data_lake", '"${var.name_prefix}-data-lake-${data.aws_caller_identity', None),
    ("audit_table", '"${var.name_prefix}-audit"', f"{PREFIX}-audit"),
    ("ecr", '"${var.name_prefix}-scorer"', f"{PREFIX}-scorer"),
    ("budget", '"${var.name_prefix}-alerts"', f"{PREFIX}-alerts"),
    ("budget", '"${var.name_prefix}-monthly-cost"', f"{PREFIX}-monthly-cost"),
    ("budget", '"alias/${var.name_prefix}-alerts"', f"alias/{PREFIX}-alerts"),
    ("platform_key", '"alias/${var.name_prefix}-platform"', f"alias/{PREFIX}-platform"),
    ("api", '"${var.name_prefix}-api"', f"{PREFIX}-api"),
    ("api", '"${var.name_prefix}-router"', f"{PREFIX}-router"),
    ("api", '"${var.name_prefix}-authorizer"', f"{PREFIX}-authorizer"),
    ("api", '"/aws/lambda/${var.name_prefix}-router"', f"/aws/lambda/{PREFIX}-router"),
    (
        "api",
        '"/aws/lambda/${var.name_prefix}-authorizer"',
        f"/aws/lambda/{PREFIX}-authorizer",
    ),
    (
        "api",
        '"/aws/apigateway/${var.name_prefix}-api"',
        f"/aws/apigateway/{PREFIX}-api",
    ),
    (
        "monitoring",
        '"/aws/sagemaker/Endpoints/${var.endpoint_name}"',
        f"/aws/sagemaker/Endpoints/{PREFIX}-scorer",
    ),
    (
        "monitoring",
        '"${var.endpoint_name}-p99-latency"',
        f"{PREFIX}-scorer-p99-latency",
    ),
    ("monitoring", '"${var.endpoint_name}-5xx"', f"{PREFIX}-scorer-5xx"),
    (
        "scheduler",
        '"${var.name_prefix}-endpoint-scheduler"',
        f"{PREFIX}-endpoint-scheduler",
    ),
    ("scheduler", '"${var.name_prefix}-endpoint-start"', f"{PREFIX}-endpoint-start"),
    ("scheduler", '"${var.name_prefix}-endpoint-stop"', f"{PREFIX}-endpoint-stop"),
    (
        "scheduler",
        '"${var.name_prefix}-endpoint-schedule"',
        f"{PREFIX}-endpoint-schedule",
    ),
    (
        "iam",
        '"${var.name_prefix}-sagemaker-execution"',
        f"{PREFIX}-sagemaker-execution",
    ),
    ("iam", '"${var.name_prefix}-github-deploy"', f"{PREFIX}-github-deploy"),
]


def name_of(expression: str) -> str:
    return next(n for _, e, n in TERRAFORM_NAMES if e == expression)


def lambda_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("router.py", "def handle(event, context):\n    return {}\n")
    return buffer.getvalue()


def create_platform(aws: AwsTarget) -> None:
    """Create in moto what `terraform apply` creates, under the same names."""
    s3 = aws.client("s3")
    location = {"LocationConstraint": aws.region}
    lake = f"{PREFIX}-data-lake-{ACCOUNT_ID}"
    s3.create_bucket(Bucket=lake, CreateBucketConfiguration=location)
    s3.put_bucket_versioning(Bucket=lake, VersioningConfiguration={"Status": "Enabled"})
    for body in (b"v1", b"v2"):
        s3.put_object(Bucket=lake, Key="raw/day=2026-01-01/part.parquet", Body=body)
    s3.put_object(Bucket=lake, Key="feast/registry.db", Body=b"registry")
    s3.delete_object(Bucket=lake, Key="feast/registry.db")

    dynamodb = aws.client("dynamodb")
    for table, key in [(f"{PREFIX}-audit", "transaction_id")] + [
        (name, "entity_id") for name in FEAST_TABLES
    ]:
        dynamodb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )

    ecr = aws.client("ecr")
    ecr.create_repository(repositoryName=name_of('"${var.name_prefix}-scorer"'))
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 1,
            "digest": "sha256:" + "a" * 64,
        },
        "layers": [],
    }
    ecr.put_image(
        repositoryName=f"{PREFIX}-scorer",
        imageManifest=json.dumps(manifest),
        imageTag="card-fraud-v1",
    )

    kms = aws.client("kms")
    for alias in (f"alias/{PREFIX}-alerts", f"alias/{PREFIX}-platform"):
        key_id = kms.create_key(Description=alias)["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName=alias, TargetKeyId=key_id)

    sns = aws.client("sns")
    topic = sns.create_topic(Name=f"{PREFIX}-alerts")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="ops@example.com")
    aws.client("budgets").create_budget(
        AccountId=ACCOUNT_ID,
        Budget={
            "BudgetName": f"{PREFIX}-monthly-cost",
            "BudgetLimit": {"Amount": "62.50", "Unit": "USD"},
            "TimeUnit": "MONTHLY",
            "BudgetType": "COST",
        },
    )

    logs = aws.client("logs")
    for _, expression, name in TERRAFORM_NAMES:
        if expression.startswith('"/aws/'):
            logs.create_log_group(logGroupName=name)
    cloudwatch = aws.client("cloudwatch")
    for name, metric in (
        (f"{PREFIX}-scorer-p99-latency", "ModelLatency"),
        (f"{PREFIX}-scorer-5xx", "Invocation5XXErrors"),
    ):
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            Namespace="AWS/SageMaker",
            MetricName=metric,
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=0,
            ComparisonOperator="GreaterThanThreshold",
            AlarmActions=[topic],
        )

    iam = aws.client("iam")
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    roles = [
        f"{PREFIX}-sagemaker-execution",
        f"{PREFIX}-github-deploy",
        f"{PREFIX}-router",
        f"{PREFIX}-authorizer",
        f"{PREFIX}-endpoint-scheduler",
        f"{PREFIX}-endpoint-schedule",
    ]
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}
            ],
        }
    )
    for role in roles:
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)
        iam.put_role_policy(RoleName=role, PolicyName=role, PolicyDocument=policy)
    iam.create_open_id_connect_provider(
        Url="https://token.actions.githubusercontent.com",
        ClientIDList=["sts.amazonaws.com"],
        ThumbprintList=["a" * 40],
        Tags=[
            {"Key": "project", "Value": "cardfraud"},
            {"Key": "environment", "Value": "dev"},
        ],
    )

    functions = aws.client("lambda")
    for name, handler in (
        (f"{PREFIX}-router", "router.handle"),
        (f"{PREFIX}-authorizer", "router.authorize"),
        (f"{PREFIX}-endpoint-scheduler", "scheduler.handle"),
    ):
        functions.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=f"arn:aws:iam::{ACCOUNT_ID}:role/{name}",
            Handler=handler,
            Code={"ZipFile": lambda_zip()},
        )
    aws.client("apigatewayv2").create_api(Name=f"{PREFIX}-api", ProtocolType="HTTP")
    scheduler = aws.client("scheduler")
    for which in ("start", "stop"):
        scheduler.create_schedule(
            Name=f"{PREFIX}-endpoint-{which}",
            ScheduleExpression="cron(0 8 ? * MON-FRI *)",
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={
                "Arn": f"arn:aws:lambda:eu-west-2:{ACCOUNT_ID}:function:x",
                "RoleArn": f"arn:aws:iam::{ACCOUNT_ID}:role/{PREFIX}-endpoint-schedule",
            },
        )


def create_deploy_state(aws: AwsTarget, queue: Any) -> None:
    """Run a real deploy against moto: model, configuration, endpoint, parameter."""
    settings = load_settings(overrides={"wait": {"poll_seconds": 0}})
    deployer = Deployer(
        settings,
        sagemaker=aws.client("sagemaker"),
        runtime=aws.client("sagemaker-runtime"),
        ssm=aws.client("ssm"),
        account_id=ACCOUNT_ID,
        sleep=lambda seconds: None,
    )
    release = Release("card-fraud", "1", "run-1", f"{PREFIX}-scorer:v1")
    name = deployer.release_name(release)
    transaction_id = f"smoke-{name}"
    queue(
        [
            json.dumps(
                {
                    "transaction_id": transaction_id,
                    "score": 0.1,
                    "decision": "approve",
                    "model_version": "1",
                }
            ),
            json.dumps({"transaction_id": transaction_id}),
        ]
    )
    deployer.deploy(release)


def create_bystanders(aws: AwsTarget) -> None:
    """Resources of the account that are not the stack's, and the state bucket."""
    s3 = aws.client("s3")
    location = {"LocationConstraint": aws.region}
    s3.create_bucket(Bucket=STATE_BUCKET, CreateBucketConfiguration=location)
    s3.put_object(
        Bucket=STATE_BUCKET, Key="cardfraud/dev/terraform.tfstate", Body=b"{}"
    )
    s3.create_bucket(
        Bucket="cardfraud-prod-data-lake-1", CreateBucketConfiguration=location
    )
    aws.client("iam").create_role(
        RoleName="other-team-role", AssumeRolePolicyDocument="{}"
    )
    aws.client("logs").create_log_group(
        logGroupName="/aws/lambda/cardfraud-prod-router"
    )


def test_terraform_names_in_modules() -> None:
    for module, expression, _ in TERRAFORM_NAMES:
        text = "\n".join(
            p.read_text(encoding="utf-8")
            for p in (TERRAFORM_DIR / "modules" / module).glob("*.tf")
        )
        assert expression in text, f"{expression} not in modules/{module}"


def test_teardown_moto_leaves_nothing_of_stack(
    aws: AwsTarget, queue_answers: Any
) -> None:
    create_platform(aws)
    create_deploy_state(aws, queue_answers)
    create_bystanders(aws)
    before = Sweeper(aws, STACK).find()
    kinds = {(item.service, item.kind) for item in before}
    assert kinds == {
        ("sagemaker", "endpoint"),
        ("sagemaker", "endpoint-config"),
        ("sagemaker", "model"),
        ("ssm", "parameter"),
        ("cloudwatch", "alarm"),
        ("scheduler", "schedule"),
        ("lambda", "function"),
        ("apigatewayv2", "api"),
        ("logs", "log-group"),
        ("ecr", "repository"),
        ("dynamodb", "table"),
        ("s3", "bucket"),
        ("sns", "topic"),
        ("budgets", "budget"),
        ("iam", "role"),
        ("iam", "oidc-provider"),
        ("kms", "key"),
    }

    report = teardown(aws, STACK)

    assert report.remaining == []
    assert Sweeper(aws, STACK).find() == []
    assert len(report.deleted) == len(before)
    assert report.kept == [f"s3 bucket {STATE_BUCKET}"]
    buckets = {b["Name"] for b in aws.client("s3").list_buckets()["Buckets"]}
    assert buckets == {STATE_BUCKET, "cardfraud-prod-data-lake-1"}
    assert aws.client("iam").get_role(RoleName="other-team-role")
    groups = aws.client("logs").describe_log_groups()["logGroups"]
    assert [g["logGroupName"] for g in groups] == ["/aws/lambda/cardfraud-prod-router"]
    kms = aws.client("kms")
    states = {
        kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]["KeyState"]
        for k in kms.list_keys()["Keys"]
    }
    assert states == {"PendingDeletion"}


def test_teardown_all_moto_deletes_state_bucket(
    aws: AwsTarget, queue_answers: Any
) -> None:
    create_platform(aws)
    create_bystanders(aws)

    report = teardown(aws, STACK, include_state=True)

    buckets = {b["Name"] for b in aws.client("s3").list_buckets()["Buckets"]}
    assert buckets == {"cardfraud-prod-data-lake-1"}
    assert f"s3 bucket {STATE_BUCKET}" in report.deleted
    assert report.kept == []


def test_teardown_dry_run_moto_deletes_nothing(
    aws: AwsTarget, queue_answers: Any
) -> None:
    create_platform(aws)
    before = Sweeper(aws, STACK).find()

    report = teardown(aws, STACK, dry_run=True)

    assert Sweeper(aws, STACK).find() == before
    assert len(report.remaining) == len(before)
    assert report.deleted == []


def test_teardown_moto_fails_when_something_remains(
    aws: AwsTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_platform(aws)
    original = Sweeper.delete

    def skip_tables(self: Sweeper, item: Any) -> None:
        if item.service != "dynamodb":
            original(self, item)

    monkeypatch.setattr(Sweeper, "delete", skip_tables)

    with pytest.raises(
        TeardownError, match=re.escape(f"dynamodb table {PREFIX}-audit")
    ):
        teardown(aws, STACK)


def test_teardown_without_terraform_binary_fails(
    aws: AwsTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")

    with pytest.raises(TeardownError, match="--no-terraform"):
        teardown(aws, STACK, terraform_folder=TERRAFORM_DIR)
