"""Static checks of the platform modules: alarms, encryption, IAM, names, routes.

The HCL is parsed with python-hcl2; Terraform and the AWS provider do not run here.
IAM policies are checked as written in ``aws_iam_policy_document`` blocks.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml
from hcl2.utils import SerializationOptions

from cardfraud.deploy.settings import load_settings
from cardfraud.online import CARD_STATE_VIEW, MERCHANT_STATE_VIEW

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = ROOT / "infra" / "terraform"
HCL_OPTIONS = SerializationOptions(
    with_comments=False, explicit_blocks=False, strip_string_quotes=True
)
# CloudWatch units of the SageMaker endpoint metrics that the alarms watch.
SAGEMAKER_METRIC_UNITS = {
    "ModelLatency": "Microseconds",
    "OverheadLatency": "Microseconds",
    "Invocation5XXErrors": "Count",
}
MICROSECONDS_PER_MS = 1000

# Where AWS accepts only "*" as the resource, with the reason. Anything else with
# a "*" resource, or any "*" action, fails the IAM tests.
STAR_RESOURCE_EXCEPTIONS = {
    ("iam", "sagemaker_execution", "GetRegistryToken"): (
        "ecr:GetAuthorizationToken has no resource type; the token alone pulls "
        "nothing, each pull is checked against the repository statement"
    ),
    ("iam", "deploy", "GetRegistryToken"): (
        "ecr:GetAuthorizationToken has no resource type"
    ),
}
# Key policies are resource policies: their "*" resource is the key itself.
KEY_POLICIES = {("budget", "sns_key"), ("platform_key", "key")}

# Every role and exactly what its inline policy grants: sid -> (actions, resources).
EXPECTED_ROLE_POLICIES: dict[tuple[str, str], dict[str, tuple[set, list]]] = {
    ("iam", "sagemaker_execution"): {
        "PullScorerImage": (
            {
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
            },
            ["${var.ecr_repository_arn}"],
        ),
        "GetRegistryToken": ({"ecr:GetAuthorizationToken"}, ["*"]),
        "WriteEndpointLogs": (
            {"logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"},
            ["${var.endpoint_log_group_arn}", "${var.endpoint_log_group_arn}:*"],
        ),
        "ReadModelArtifacts": (
            {"s3:GetObject"},
            ["${var.data_lake_bucket_arn}/${var.model_prefix}*"],
        ),
        "ReadFeastRegistry": (
            {"s3:GetObject"},
            ["${var.data_lake_bucket_arn}/${var.feast_registry_key}"],
        ),
        "WriteAuditLog": (
            {"dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:GetItem"},
            ["${var.audit_table_arn}"],
        ),
        "ReadWriteOnlineFeatures": (
            {
                "dynamodb:BatchGetItem",
                "dynamodb:GetItem",
                "dynamodb:BatchWriteItem",
                "dynamodb:PutItem",
            },
            "${local.feature_tables}",
        ),
        "UseAuditTableKey": (
            {"kms:Decrypt", "kms:GenerateDataKey"},
            ["${var.kms_key_arn}"],
        ),
    },
    ("iam", "deploy"): {
        "ManageReleases": (
            {
                "sagemaker:AddTags",
                "sagemaker:CreateEndpoint",
                "sagemaker:CreateEndpointConfig",
                "sagemaker:CreateModel",
                "sagemaker:DescribeEndpoint",
                "sagemaker:DescribeEndpointConfig",
                "sagemaker:InvokeEndpoint",
                "sagemaker:ListTags",
                "sagemaker:UpdateEndpoint",
            },
            [
                "${local.sagemaker_arn}:model/${var.endpoint_name}-*",
                "${local.sagemaker_arn}:endpoint-config/${var.endpoint_name}-*",
                "${local.sagemaker_arn}:endpoint/${var.endpoint_name}",
            ],
        ),
        "PassExecutionRole": (
            {"iam:PassRole"},
            ["${aws_iam_role.sagemaker_execution.arn}"],
        ),
        "PushScorerImage": (
            {
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:CompleteLayerUpload",
                "ecr:DescribeImages",
                "ecr:InitiateLayerUpload",
                "ecr:PutImage",
                "ecr:UploadLayerPart",
            },
            ["${var.ecr_repository_arn}"],
        ),
        "GetRegistryToken": ({"ecr:GetAuthorizationToken"}, ["*"]),
        "UseImageKey": ({"kms:Decrypt", "kms:GenerateDataKey"}, ["${var.kms_key_arn}"]),
        "CheckRollbackAlarms": ({"cloudwatch:DescribeAlarms"}, "${local.alarm_arns}"),
        "RecordLiveConfig": (
            {"ssm:GetParameter", "ssm:PutParameter"},
            ["${local.parameter_arn}"],
        ),
    },
    ("api", "router"): {
        "InvokeScorer": ({"sagemaker:InvokeEndpoint"}, ["${local.endpoint_arn}"]),
        "WriteRouterLogs": (
            {"logs:CreateLogStream", "logs:PutLogEvents"},
            ["${aws_cloudwatch_log_group.router.arn}:*"],
        ),
        "DecryptSettings": ({"kms:Decrypt"}, ["${var.kms_key_arn}"]),
    },
    ("api", "authorizer"): {
        "WriteAuthorizerLogs": (
            {"logs:CreateLogStream", "logs:PutLogEvents"},
            ["${aws_cloudwatch_log_group.authorizer.arn}:*"],
        ),
        "DecryptSettings": ({"kms:Decrypt"}, ["${var.kms_key_arn}"]),
    },
    ("scheduler", "function"): {
        "StopAndStartEndpoint": (
            {
                "sagemaker:DescribeEndpoint",
                "sagemaker:DeleteEndpoint",
                "sagemaker:CreateEndpoint",
            },
            ["${local.sagemaker_arn}:endpoint/${var.endpoint_name}"],
        ),
        "UseLiveConfig": (
            {"sagemaker:CreateEndpoint"},
            ["${local.sagemaker_arn}:endpoint-config/${var.endpoint_name}-*"],
        ),
        "ReadLiveConfigName": ({"ssm:GetParameter"}, ["${local.parameter_arn}"]),
        "WriteSchedulerLogs": (
            {"logs:CreateLogStream", "logs:PutLogEvents"},
            ["${aws_cloudwatch_log_group.scheduler.arn}:*"],
        ),
        "DecryptSettings": ({"kms:Decrypt"}, ["${var.kms_key_arn}"]),
    },
    ("scheduler", "invoke"): {
        "InvokeEndpointScheduler": (
            {"lambda:InvokeFunction"},
            ["${aws_lambda_function.scheduler.arn}"],
        ),
        "DecryptScheduleInput": ({"kms:Decrypt"}, ["${var.kms_key_arn}"]),
    },
}

# Resource types that hold data, and the attribute that names their encryption key.
STORE_ENCRYPTION = {
    "aws_s3_bucket": None,  # checked through its encryption configuration resource
    "aws_dynamodb_table": "server_side_encryption",
    "aws_ecr_repository": "encryption_configuration",
    "aws_sns_topic": "kms_master_key_id",
    "aws_cloudwatch_log_group": "kms_key_id",
    "aws_lambda_function": "kms_key_arn",
    "aws_scheduler_schedule": "kms_key_arn",
}


# --- Parsing ---


def load_module(folder: Path) -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {}
    for path in sorted(folder.glob("*.tf")):
        parsed = hcl2.loads(
            path.read_text(encoding="utf-8"), serialization_options=HCL_OPTIONS
        )
        for block_type, blocks in parsed.items():
            merged.setdefault(block_type, []).extend(blocks)
    return merged


def typed(module: dict[str, list[Any]], block_type: str) -> dict[tuple[str, str], Any]:
    bodies: dict[tuple[str, str], Any] = {}
    for block in module.get(block_type, []):
        for kind, named in block.items():
            for name, body in named.items():
                bodies[(kind, name)] = body
    return bodies


def variables(module: dict[str, list[Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for block in module.get("variable", []):
        found.update(block)
    return found


def load_all(root: Path) -> dict[str, dict[str, list[Any]]]:
    modules = {"root": load_module(root)}
    for folder in sorted((root / "modules").iterdir()):
        modules[folder.name] = load_module(folder)
    return modules


@pytest.fixture(scope="module")
def modules() -> dict[str, dict[str, list[Any]]]:
    return load_all(TERRAFORM_DIR)


def policy_documents(
    modules: dict[str, dict[str, list[Any]]],
) -> dict[tuple[str, str], dict[str, Any]]:
    documents = {}
    for module_name, module in modules.items():
        for (kind, name), body in typed(module, "data").items():
            if kind == "aws_iam_policy_document":
                documents[(module_name, name)] = body
    return documents


def role_policy_documents(
    modules: dict[str, dict[str, list[Any]]],
) -> dict[tuple[str, str], dict[str, Any]]:
    """Map (module, role) to the policy document of its inline policy."""
    documents = policy_documents(modules)
    found = {}
    for module_name, module in modules.items():
        for (kind, name), body in typed(module, "resource").items():
            if kind != "aws_iam_role_policy":
                continue
            match = re.fullmatch(
                r"\$\{data\.aws_iam_policy_document\.(\w+)\.json\}", body["policy"]
            )
            assert match, f"{module_name}.{name} policy is not a policy document"
            found[(module_name, name)] = documents[(module_name, match.group(1))]
    return found


# --- Checks, shared with the planted-defect tests ---


def check_no_wildcards(modules: dict[str, dict[str, list[Any]]]) -> None:
    for (module_name, name), document in policy_documents(modules).items():
        is_key_policy = (module_name, name) in KEY_POLICIES
        for statement in document["statement"]:
            sid = statement.get("sid", "?")
            label = f"{module_name}.{name}.{sid}"
            if statement.get("effect", "Allow") != "Allow":
                continue
            for action in statement.get("actions", []):
                if is_key_policy and sid == "AccountAdministersKey":
                    continue
                assert action != "*", f"{label} allows every action"
                assert not action.endswith(":*"), f"{label} allows {action}"
            resources = statement.get("resources", [])
            if "*" in resources and not is_key_policy:
                assert (module_name, name, sid) in STAR_RESOURCE_EXCEPTIONS, (
                    f"{label} has resource '*' and is not a listed exception"
                )


def check_role_policies(modules: dict[str, dict[str, list[Any]]]) -> None:
    found = role_policy_documents(modules)
    assert set(found) == set(EXPECTED_ROLE_POLICIES)
    for role, expected in EXPECTED_ROLE_POLICIES.items():
        statements = {s["sid"]: s for s in found[role]["statement"]}
        assert set(statements) == set(expected), role
        for sid, (actions, resources) in expected.items():
            statement = statements[sid]
            assert statement["effect"] == "Allow", (role, sid)
            assert set(statement["actions"]) == actions, (role, sid)
            assert statement["resources"] == resources, (role, sid)


def resolve_threshold(monitoring: dict[str, list[Any]]) -> float:
    """Evaluate the latency alarm's threshold from the variable's default."""
    alarm = typed(monitoring, "resource")[
        ("aws_cloudwatch_metric_alarm", "p99_latency")
    ]
    assert alarm["threshold"] == "${local.model_latency_threshold_us}"
    expression = monitoring["locals"][0]["model_latency_threshold_us"]
    match = re.fullmatch(r"\$\{var\.(\w+) \* (\d+)\}", expression)
    assert match, expression
    default = variables(monitoring)[match.group(1)]["default"]
    return default * int(match.group(2))


# --- Alarms ---


def test_latency_alarm_150ms_in_microseconds(
    modules: dict[str, dict[str, list[Any]]],
) -> None:
    monitoring = modules["monitoring"]
    alarm = typed(monitoring, "resource")[
        ("aws_cloudwatch_metric_alarm", "p99_latency")
    ]

    assert alarm["namespace"] == "AWS/SageMaker"
    assert alarm["metric_name"] == "ModelLatency"
    assert SAGEMAKER_METRIC_UNITS[alarm["metric_name"]] == "Microseconds"
    assert alarm["extended_statistic"] == "p99"
    assert alarm["comparison_operator"] == "GreaterThanThreshold"
    assert resolve_threshold(monitoring) == 150 * MICROSECONDS_PER_MS
    root_variable = variables(modules["root"])["latency_p99_threshold_ms"]
    assert root_variable["default"] == 150
    assert alarm["dimensions"] == {
        "EndpointName": "${var.endpoint_name}",
        "VariantName": "${var.variant_name}",
    }
    assert alarm["alarm_actions"] == ["${var.alarm_topic_arn}"]


def test_latency_threshold_fails_in_milliseconds(tmp_path: Path) -> None:
    copy = tmp_path / "terraform"
    shutil.copytree(TERRAFORM_DIR, copy)
    main = copy / "modules" / "monitoring" / "main.tf"
    text = main.read_text(encoding="utf-8")
    main.write_text(
        text.replace(
            "var.latency_p99_threshold_ms * 1000", "var.latency_p99_threshold_ms * 1"
        ),
        encoding="utf-8",
    )

    assert resolve_threshold(load_module(copy / "modules" / "monitoring")) == 150


def test_5xx_alarm_any_error_per_minute(
    modules: dict[str, dict[str, list[Any]]],
) -> None:
    alarm = typed(modules["monitoring"], "resource")[
        ("aws_cloudwatch_metric_alarm", "errors_5xx")
    ]

    assert alarm["metric_name"] == "Invocation5XXErrors"
    assert SAGEMAKER_METRIC_UNITS[alarm["metric_name"]] == "Count"
    assert alarm["statistic"] == "Sum"
    assert alarm["period"] == 60
    assert alarm["threshold"] == 0
    assert alarm["comparison_operator"] == "GreaterThanThreshold"
    assert alarm["treat_missing_data"] == "notBreaching"


def test_alarm_names_match_deploy_settings(
    modules: dict[str, dict[str, list[Any]]],
) -> None:
    settings = load_settings()
    alarms = typed(modules["monitoring"], "resource")
    names = [
        alarms[("aws_cloudwatch_metric_alarm", key)]["alarm_name"].replace(
            "${var.endpoint_name}", settings.endpoint_name
        )
        for key in ("p99_latency", "errors_5xx")
    ]

    assert tuple(names) == settings.alarm_names


# --- Names shared with the deploy command ---


def test_names_match_deploy_settings(modules: dict[str, dict[str, list[Any]]]) -> None:
    settings = load_settings()
    root_vars = variables(modules["root"])
    prefix = f"{root_vars['project']['default']}-{root_vars['environment']['default']}"
    root_locals = modules["root"]["locals"][0]

    assert prefix == settings.prefix
    assert root_vars["aws_region"]["default"] == settings.region
    assert root_locals["endpoint_name"] == "${local.name_prefix}-scorer"
    assert f"{prefix}-scorer" == settings.endpoint_name
    assert root_locals["live_config_parameter"] == (
        "/${local.name_prefix}/scorer/live-endpoint-config"
    )
    assert f"/{prefix}/scorer/live-endpoint-config" == settings.live_config_parameter
    role = typed(modules["iam"], "resource")[("aws_iam_role", "sagemaker_execution")]
    assert role["name"] == "${var.name_prefix}-sagemaker-execution"
    assert f"{prefix}-sagemaker-execution" == settings.execution_role_name


def test_feast_tables_match_online_views(
    modules: dict[str, dict[str, list[Any]]],
) -> None:
    store = yaml.safe_load(
        (ROOT / "feature_repo" / "feature_store.aws.yaml").read_text(encoding="utf-8")
    )
    expected = [
        f"{store['project']}.{CARD_STATE_VIEW}",
        f"{store['project']}.{MERCHANT_STATE_VIEW}",
    ]

    assert store["online_store"]["type"] == "dynamodb"
    assert variables(modules["root"])["feast_online_tables"]["default"] == expected


# --- Encryption and tags ---


def test_every_store_encrypted(modules: dict[str, dict[str, list[Any]]]) -> None:
    seen = set()
    for module_name, module in modules.items():
        for (kind, name), body in typed(module, "resource").items():
            if kind not in STORE_ENCRYPTION:
                continue
            seen.add(kind)
            label = f"{module_name}.{kind}.{name}"
            attribute = STORE_ENCRYPTION[kind]
            if attribute is None:
                continue
            value = body.get(attribute)
            assert value, f"{label} sets no {attribute}"
            if kind == "aws_dynamodb_table":
                assert value[0]["enabled"] is True, label
                assert value[0]["kms_key_arn"] == "${var.kms_key_arn}", label
            if kind == "aws_ecr_repository":
                assert value[0]["encryption_type"] == "KMS", label

    assert seen == set(STORE_ENCRYPTION)
    buckets = typed(modules["data_lake"], "resource")
    assert ("aws_s3_bucket_server_side_encryption_configuration", "this") in buckets


def test_no_resource_overrides_default_tags(
    modules: dict[str, dict[str, list[Any]]],
) -> None:
    for module_name, module in modules.items():
        for (kind, name), body in typed(module, "resource").items():
            tags = body.get("tags")
            if tags is None:
                continue
            for key in ("project", "environment", "owner", "cost-center"):
                assert key not in tags or tags[key].startswith("${var."), (
                    f"{module_name}.{kind}.{name} overrides tag {key}"
                )


# --- IAM ---


def test_iam_no_wildcard_actions_or_resources(
    modules: dict[str, dict[str, list[Any]]],
) -> None:
    check_no_wildcards(modules)


def test_iam_roles_grant_exactly_their_jobs(
    modules: dict[str, dict[str, list[Any]]],
) -> None:
    check_role_policies(modules)


def test_iam_star_exceptions_all_used(modules: dict[str, dict[str, list[Any]]]) -> None:
    documents = policy_documents(modules)
    for module_name, name, sid in STAR_RESOURCE_EXCEPTIONS:
        statements = {s["sid"]: s for s in documents[(module_name, name)]["statement"]}
        assert statements[sid]["resources"] == ["*"]
        assert statements[sid]["actions"] == ["ecr:GetAuthorizationToken"]


def test_iam_no_users_or_access_keys(modules: dict[str, dict[str, list[Any]]]) -> None:
    for module in modules.values():
        kinds = {kind for kind, _ in typed(module, "resource")}
        assert not kinds & {"aws_iam_user", "aws_iam_access_key", "aws_iam_user_policy"}


def test_iam_trust_policies(modules: dict[str, dict[str, list[Any]]]) -> None:
    documents = policy_documents(modules)
    sagemaker = documents[("iam", "sagemaker_trust")]["statement"][0]
    assert sagemaker["principals"][0]["identifiers"] == ["sagemaker.amazonaws.com"]
    assert sagemaker["condition"][0]["variable"] == "aws:SourceAccount"

    github = documents[("iam", "deploy_trust")]["statement"][0]
    assert github["actions"] == ["sts:AssumeRoleWithWebIdentity"]
    assert github["principals"][0]["type"] == "Federated"
    conditions = {c["variable"]: c for c in github["condition"]}
    audience = conditions["${local.github_oidc_host}:aud"]
    assert audience["test"] == "StringEquals"
    assert audience["values"] == ["sts.amazonaws.com"]
    subject = conditions["${local.github_oidc_host}:sub"]
    assert subject["test"] == "StringEquals"
    assert subject["values"] == [
        "repo:${var.github_repository}:environment:${var.github_environment}"
    ]
    for module_name, name in (("api", "lambda_trust"), ("scheduler", "lambda_trust")):
        statement = documents[(module_name, name)]["statement"][0]
        assert statement["principals"][0]["identifiers"] == ["lambda.amazonaws.com"]


def test_pass_role_limited_to_sagemaker(
    modules: dict[str, dict[str, list[Any]]],
) -> None:
    statements = {
        s["sid"]: s for s in policy_documents(modules)[("iam", "deploy")]["statement"]
    }
    condition = statements["PassExecutionRole"]["condition"][0]

    assert condition["variable"] == "iam:PassedToService"
    assert condition["values"] == ["sagemaker.amazonaws.com"]


IAM_PLANTED = [
    pytest.param(
        "modules/iam/main.tf",
        '"sagemaker:UpdateEndpoint",\n',
        '"sagemaker:*",\n',
        check_no_wildcards,
        id="service-wildcard-action",
    ),
    pytest.param(
        "modules/api/main.tf",
        "resources = [local.endpoint_arn]",
        'resources = ["*"]',
        check_no_wildcards,
        id="router-star-resource",
    ),
    pytest.param(
        "modules/iam/main.tf",
        '"dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:GetItem"',
        '"dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:GetItem", '
        '"dynamodb:DeleteTable"',
        check_role_policies,
        id="extra-action",
    ),
    pytest.param(
        "modules/iam/main.tf",
        'resources = ["${var.data_lake_bucket_arn}/${var.feast_registry_key}"]',
        'resources = ["${var.data_lake_bucket_arn}/*"]',
        check_role_policies,
        id="whole-bucket",
    ),
]


@pytest.mark.parametrize(("relative", "old", "new", "check"), IAM_PLANTED)
def test_iam_check_fails_on_planted_defect(
    tmp_path: Path, relative: str, old: str, new: str, check: Any
) -> None:
    copy = tmp_path / "terraform"
    shutil.copytree(TERRAFORM_DIR, copy)
    check(load_all(copy))
    path = copy / relative
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")

    with pytest.raises(AssertionError):
        check(load_all(copy))


# --- API ---


def test_api_routes_behind_authorizer(modules: dict[str, dict[str, list[Any]]]) -> None:
    resources = typed(modules["api"], "resource")
    routes = {
        body["route_key"]: body
        for (kind, _), body in resources.items()
        if kind == "aws_apigatewayv2_route"
    }

    assert set(routes) == {"POST /score", "GET /explanations/{transaction_id}"}
    for route in routes.values():
        assert route["authorization_type"] == "CUSTOM"
        assert route["authorizer_id"] == "${aws_apigatewayv2_authorizer.token.id}"
    authorizer = resources[("aws_apigatewayv2_authorizer", "token")]
    assert authorizer["enable_simple_responses"] is True
    assert authorizer["identity_sources"] == ["$request.header.Authorization"]
    router = resources[("aws_lambda_function", "router")]
    assert router["handler"] == "router.handle"
    assert resources[("aws_lambda_function", "authorizer")]["handler"] == (
        "router.authorize"
    )
    stage = resources[("aws_apigatewayv2_stage", "default")]
    assert stage["default_route_settings"][0]["throttling_rate_limit"] == (
        "${var.throttle_rate}"
    )


def test_lambda_sources_exist(modules: dict[str, dict[str, list[Any]]]) -> None:
    calls = {}
    for block in modules["root"]["module"]:
        calls.update(block)
    for module_name, key in (
        ("api", "router_source_file"),
        ("scheduler", "scheduler_source_file"),
    ):
        relative = calls[module_name][key].replace("${path.root}/", "")
        assert (TERRAFORM_DIR / relative).resolve().is_file(), relative


def test_schedule_stops_endpoint_overnight(
    modules: dict[str, dict[str, list[Any]]],
) -> None:
    root_vars = variables(modules["root"])
    scheduler = modules["scheduler"]
    schedules = typed(scheduler, "resource")

    assert root_vars["service_start_hour"]["default"] == 8
    assert root_vars["service_stop_hour"]["default"] == 20
    assert root_vars["service_days"]["default"] == "MON-FRI"
    assert root_vars["overnight_stop_enabled"]["default"] is True
    start = schedules[("aws_scheduler_schedule", "start")]
    stop = schedules[("aws_scheduler_schedule", "stop")]
    assert start["target"][0]["input"] == '${jsonencode({action = "start"})}'
    assert stop["target"][0]["input"] == '${jsonencode({action = "stop"})}'
    assert start["schedule_expression_timezone"] == "${var.timezone}"
