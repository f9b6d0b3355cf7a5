"""Static checks of the Terraform in infra/terraform.

Terraform and its AWS provider are not installed where these tests run, so the
checks parse the HCL with python-hcl2 (8.x) and assert on the parsed blocks.
Nothing here calls AWS or needs network access.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2.utils import SerializationOptions

TERRAFORM_DIR = Path(__file__).resolve().parents[2] / "infra" / "terraform"
MODULE_NAMES = (
    "data_lake",
    "budget",
    "platform_key",
    "audit_table",
    "ecr",
    "monitoring",
    "api",
    "scheduler",
    "iam",
)
MODULE_DIRS = {
    "root": Path("."),
    **{name: Path(f"modules/{name}") for name in MODULE_NAMES},
}
EXPECTED_TF_FILES = {
    "backend.tf",
    "main.tf",
    "outputs.tf",
    "providers.tf",
    "variables.tf",
    "versions.tf",
    *(
        f"modules/{name}/{file}"
        for name in MODULE_NAMES
        for file in ("main.tf", "outputs.tf", "variables.tf", "versions.tf")
    ),
}
# Plain values without quotes, blocks as lists of dicts, no comment keys.
HCL_OPTIONS = SerializationOptions(
    with_comments=False, explicit_blocks=False, strip_string_quotes=True
)
VAR_REFERENCE = re.compile(r"\bvar\.([A-Za-z_][A-Za-z0-9_]*)")
RESOURCE_REFERENCE = re.compile(r"(?<![\w.])(aws_[a-z0-9_]+)\.([a-z0-9_]+)")
DATA_REFERENCE = re.compile(r"\bdata\.(aws_[a-z0-9_]+)\.([a-z0-9_]+)")
MODULE_REFERENCE = re.compile(r"\bmodule\.([a-z0-9_]+)\.([a-z0-9_]+)")
BUDGET_TOPIC_ARN = "${aws_sns_topic.alerts.arn}"


# --- Parsing helpers ---


def parse_hcl(path: Path) -> dict[str, Any]:
    """Parse one HCL file into plain Python values."""
    return hcl2.loads(
        path.read_text(encoding="utf-8"), serialization_options=HCL_OPTIONS
    )


def load_module(module_dir: Path) -> dict[str, list[Any]]:
    """Merge the top-level blocks of every .tf file in one module folder."""
    merged: dict[str, list[Any]] = {}
    for path in sorted(module_dir.glob("*.tf")):
        for block_type, blocks in parse_hcl(path).items():
            merged.setdefault(block_type, []).extend(blocks)
    return merged


def labelled(module: dict[str, list[Any]], block_type: str) -> dict[str, Any]:
    """Map each label of a one-label block type (variable, output) to its body."""
    bodies: dict[str, Any] = {}
    for block in module.get(block_type, []):
        bodies.update(block)
    return bodies


def typed(module: dict[str, list[Any]], block_type: str) -> dict[tuple[str, str], Any]:
    """Map (type, name) of each resource or data block to its body."""
    bodies: dict[tuple[str, str], Any] = {}
    for block in module.get(block_type, []):
        for kind, named in block.items():
            for name, body in named.items():
                bodies[(kind, name)] = body
    return bodies


def single_resource(module: dict[str, list[Any]], kind: str) -> dict[str, Any]:
    """Return the body of the only resource of ``kind`` in the module."""
    matches = [body for (k, _), body in typed(module, "resource").items() if k == kind]
    assert len(matches) == 1, f"expected one {kind}, found {len(matches)}"
    return matches[0]


def module_text(module_dir: Path) -> str:
    """Concatenate the text of every .tf file in one module folder."""
    return "\n".join(
        p.read_text(encoding="utf-8") for p in sorted(module_dir.glob("*.tf"))
    )


def copy_tree(tmp_path: Path) -> Path:
    """Copy infra/terraform into tmp_path and return the copy's root."""
    target = tmp_path / "terraform"
    shutil.copytree(TERRAFORM_DIR, target)
    return target


def plant(root: Path, relative: str, old: str, new: str) -> None:
    """Replace exactly one occurrence of ``old`` in a file of a copied tree."""
    path = root / relative
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {relative}"
    path.write_text(text.replace(old, new), encoding="utf-8")


# --- Checks, shared by the tests on the real tree and on planted copies ---


def check_encryption(data_lake: dict[str, list[Any]]) -> None:
    body = single_resource(
        data_lake, "aws_s3_bucket_server_side_encryption_configuration"
    )
    rule = body["rule"][0]
    default = rule["apply_server_side_encryption_by_default"][0]
    assert default["sse_algorithm"] in {"aws:kms", "AES256"}
    assert rule["bucket_key_enabled"] is True
    assert body["bucket"] == "${aws_s3_bucket.this.id}"


def check_versioning(data_lake: dict[str, list[Any]]) -> None:
    body = single_resource(data_lake, "aws_s3_bucket_versioning")
    assert body["versioning_configuration"][0]["status"] == "Enabled"
    assert body["bucket"] == "${aws_s3_bucket.this.id}"


def check_public_access_block(data_lake: dict[str, list[Any]]) -> None:
    body = single_resource(data_lake, "aws_s3_bucket_public_access_block")
    for setting in (
        "block_public_acls",
        "block_public_policy",
        "ignore_public_acls",
        "restrict_public_buckets",
    ):
        assert body.get(setting) is True, f"{setting} is {body.get(setting)!r}"


def check_ownership(data_lake: dict[str, list[Any]]) -> None:
    body = single_resource(data_lake, "aws_s3_bucket_ownership_controls")
    assert body["rule"][0]["object_ownership"] == "BucketOwnerEnforced"


def lifecycle_rules(data_lake: dict[str, list[Any]]) -> dict[str, dict[str, Any]]:
    body = single_resource(data_lake, "aws_s3_bucket_lifecycle_configuration")
    return {rule["id"]: rule for rule in body["rule"]}


def check_lifecycle(data_lake: dict[str, list[Any]]) -> None:
    defaults = {
        name: body.get("default")
        for name, body in labelled(data_lake, "variable").items()
    }
    rules = lifecycle_rules(data_lake)
    assert set(rules) == {
        "raw-to-standard-ia",
        "expire-noncurrent-versions",
        "abort-incomplete-multipart-uploads",
    }
    for rule in rules.values():
        assert rule["status"] == "Enabled", f"rule {rule['id']} is {rule['status']}"

    raw = rules["raw-to-standard-ia"]
    assert raw["filter"][0]["prefix"] == "${var.raw_prefix}"
    assert defaults["raw_prefix"] == "raw/"
    transition = raw["transition"][0]
    assert transition["storage_class"] == "STANDARD_IA"
    assert transition["days"] == "${var.raw_transition_days}"
    assert defaults["raw_transition_days"] == 30

    noncurrent = rules["expire-noncurrent-versions"]["noncurrent_version_expiration"][0]
    assert noncurrent["noncurrent_days"] == "${var.noncurrent_version_expiration_days}"
    assert defaults["noncurrent_version_expiration_days"] == 90

    multipart = rules["abort-incomplete-multipart-uploads"][
        "abort_incomplete_multipart_upload"
    ][0]
    assert (
        multipart["days_after_initiation"] == "${var.abort_incomplete_multipart_days}"
    )
    assert defaults["abort_incomplete_multipart_days"] == 7


def check_tls_only_policy(data_lake: dict[str, list[Any]]) -> None:
    policy = single_resource(data_lake, "aws_s3_bucket_policy")
    assert policy["policy"] == "${data.aws_iam_policy_document.tls_only.json}"
    document = typed(data_lake, "data")[("aws_iam_policy_document", "tls_only")]
    insecure = [
        statement
        for statement in document["statement"]
        if any(
            condition["variable"] == "aws:SecureTransport"
            for condition in statement.get("condition", [])
        )
    ]
    assert len(insecure) == 1
    statement = insecure[0]
    assert statement["effect"] == "Deny"
    assert statement["actions"] == ["s3:*"]
    assert statement["principals"][0]["identifiers"] == ["*"]
    assert statement["resources"] == [
        "${aws_s3_bucket.this.arn}",
        "${aws_s3_bucket.this.arn}/*",
    ]
    condition = statement["condition"][0]
    assert condition["test"] == "Bool"
    assert condition["values"] == ["false"]


def budget_notifications(budget: dict[str, list[Any]]) -> list[dict[str, Any]]:
    return single_resource(budget, "aws_budgets_budget")["notification"]


def check_budget_notifications(budget: dict[str, list[Any]]) -> None:
    notifications = budget_notifications(budget)
    thresholds = sorted(
        (item["threshold"], item["notification_type"]) for item in notifications
    )
    assert thresholds == [(60, "ACTUAL"), (90, "ACTUAL"), (100, "FORECASTED")]
    for item in notifications:
        label = f"{item['threshold']}% {item['notification_type']}"
        assert item["threshold_type"] == "PERCENTAGE", label
        assert item["comparison_operator"] == "GREATER_THAN", label
        assert item["subscriber_sns_topic_arns"] == [BUDGET_TOPIC_ARN], label
        assert item["subscriber_email_addresses"] == "${local.email_subscribers}", label


def check_provider_tags(root: dict[str, list[Any]]) -> None:
    providers = [block["aws"] for block in root["provider"] if "aws" in block]
    assert len(providers) == 1
    aws = providers[0]
    assert aws["region"] == "${var.aws_region}"
    tags = aws["default_tags"][0]["tags"]
    assert tags == {
        "project": "${var.project}",
        "environment": "${var.environment}",
        "owner": "${var.owner}",
        "cost-center": "${var.cost_center}",
    }


def check_aws_pinned(module: dict[str, list[Any]]) -> None:
    pins = [
        block["required_providers"][0]["aws"]
        for block in module["terraform"]
        if "required_providers" in block
    ]
    assert len(pins) == 1
    aws = pins[0]
    assert aws["source"] == "hashicorp/aws"
    assert re.fullmatch(r"~> \d+\.\d+(\.\d+)?", aws["version"]), aws["version"]


# --- Fixtures ---


@pytest.fixture(scope="module")
def modules() -> dict[str, dict[str, list[Any]]]:
    return {
        name: load_module(TERRAFORM_DIR / path) for name, path in MODULE_DIRS.items()
    }


# --- Files and variables ---


def test_tf_files_all_parse() -> None:
    found = {
        path.relative_to(TERRAFORM_DIR).as_posix()
        for path in TERRAFORM_DIR.rglob("*.tf")
    }
    assert found == EXPECTED_TF_FILES
    for relative in sorted(found):
        parsed = parse_hcl(TERRAFORM_DIR / relative)
        assert parsed, f"{relative} parsed to no blocks"


def test_variables_typed_and_described(
    modules: dict[str, dict[str, list[Any]]],
) -> None:
    for module_name, module in modules.items():
        variables = labelled(module, "variable")
        assert variables, f"module {module_name} declares no variables"
        for name, body in variables.items():
            assert body.get("type"), f"{module_name}: variable {name} has no type"
            description = body.get("description", "")
            assert len(description) > 10, (
                f"{module_name}: variable {name} has no description"
            )


def test_root_variable_defaults(modules: dict[str, dict[str, list[Any]]]) -> None:
    variables = labelled(modules["root"], "variable")
    assert variables["aws_region"]["default"] == "eu-west-2"
    assert variables["monthly_budget_gbp"]["default"] == 50
    assert variables["monthly_budget_gbp"]["type"] == "number"
    assert variables["environment"]["default"] == "dev"
    assert variables["notification_email"]["default"] == ""
    for name in ("project", "environment", "aws_region", "monthly_budget_gbp"):
        assert variables[name].get("validation"), f"variable {name} has no validation"


def test_variable_references_declared(modules: dict[str, dict[str, list[Any]]]) -> None:
    for module_name, path in MODULE_DIRS.items():
        declared = set(labelled(modules[module_name], "variable"))
        used = set(VAR_REFERENCE.findall(module_text(TERRAFORM_DIR / path)))
        assert used - declared == set(), f"{module_name} uses undeclared variables"
        assert declared - used == set(), f"{module_name} declares unused variables"


def test_resource_references_declared(modules: dict[str, dict[str, list[Any]]]) -> None:
    for module_name, path in MODULE_DIRS.items():
        text = module_text(TERRAFORM_DIR / path)
        resources = set(typed(modules[module_name], "resource"))
        data_sources = set(typed(modules[module_name], "data"))
        without_data = DATA_REFERENCE.sub("", text)
        missing_resources = set(RESOURCE_REFERENCE.findall(without_data)) - resources
        missing_data = set(DATA_REFERENCE.findall(text)) - data_sources
        assert missing_resources == set(), f"{module_name}: {missing_resources}"
        assert missing_data == set(), f"{module_name}: {missing_data}"


# --- Root module wiring ---


def test_module_calls_match_inputs(modules: dict[str, dict[str, list[Any]]]) -> None:
    calls = labelled(modules["root"], "module")
    assert set(calls) == set(MODULE_NAMES)
    for name, call in calls.items():
        assert call["source"] == f"./modules/{name}"
        variables = labelled(modules[name], "variable")
        required = {var for var, body in variables.items() if "default" not in body}
        passed = set(call) - {"source"}
        assert passed - set(variables) == set(), f"module {name}: unknown inputs"
        assert required - passed == set(), f"module {name}: missing required inputs"


def test_root_outputs_reference_module_outputs(
    modules: dict[str, dict[str, list[Any]]],
) -> None:
    text = (TERRAFORM_DIR / "outputs.tf").read_text(encoding="utf-8")
    references = set(MODULE_REFERENCE.findall(text))
    assert ("data_lake", "bucket_name") in references
    assert ("data_lake", "bucket_arn") in references
    for module_name, output in references:
        assert output in labelled(modules[module_name], "output"), (
            f"module.{module_name}.{output} is not an output of that module"
        )


def test_budget_limit_converts_gbp(modules: dict[str, dict[str, list[Any]]]) -> None:
    locals_block = modules["root"]["locals"][0]
    expression = locals_block["budget_limit_amount"]
    assert 'var.budget_currency == "GBP"' in expression
    assert "var.monthly_budget_gbp * var.gbp_to_budget_currency_rate" in expression
    call = labelled(modules["root"], "module")["budget"]
    assert call["limit_amount"] == "${local.budget_limit_amount}"
    assert call["limit_unit"] == "${var.budget_currency}"


def test_provider_default_tags(modules: dict[str, dict[str, list[Any]]]) -> None:
    check_provider_tags(modules["root"])


def test_aws_provider_pinned(modules: dict[str, dict[str, list[Any]]]) -> None:
    for module in modules.values():
        check_aws_pinned(module)
    settings = modules["root"]["terraform"]
    required_version = next(
        s["required_version"] for s in settings if "required_version" in s
    )
    assert required_version.startswith(">= 1.11")


def test_backend_partial_with_lockfile() -> None:
    backend = parse_hcl(TERRAFORM_DIR / "backend.tf")["terraform"][0]["backend"][0]
    assert backend == {"s3": {}}
    example = parse_hcl(TERRAFORM_DIR / "backend.hcl.example")
    assert example["use_lockfile"] is True
    assert example["encrypt"] is True
    assert set(example) >= {"bucket", "key", "region"}


def test_no_credentials_or_endpoints() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in TERRAFORM_DIR.rglob("*.tf"))
    for setting in ("access_key", "secret_key", "profile", "endpoints", "assume_role"):
        assert re.search(rf"^\s*{setting}\s*[={{]", text, re.MULTILINE) is None, setting
    assert re.search(r"\b\d{12}\b", text) is None, "hard-coded AWS account ID"


# --- Data lake ---


def test_data_lake_encryption(modules: dict[str, dict[str, list[Any]]]) -> None:
    check_encryption(modules["data_lake"])


def test_data_lake_versioning(modules: dict[str, dict[str, list[Any]]]) -> None:
    check_versioning(modules["data_lake"])


def test_data_lake_public_access_block(
    modules: dict[str, dict[str, list[Any]]],
) -> None:
    check_public_access_block(modules["data_lake"])


def test_data_lake_ownership(modules: dict[str, dict[str, list[Any]]]) -> None:
    check_ownership(modules["data_lake"])


def test_data_lake_lifecycle(modules: dict[str, dict[str, list[Any]]]) -> None:
    check_lifecycle(modules["data_lake"])


def test_data_lake_tls_only_policy(modules: dict[str, dict[str, list[Any]]]) -> None:
    check_tls_only_policy(modules["data_lake"])


def test_data_lake_outputs(modules: dict[str, dict[str, list[Any]]]) -> None:
    outputs = labelled(modules["data_lake"], "output")
    assert outputs["bucket_name"]["value"] == "${aws_s3_bucket.this.id}"
    assert outputs["bucket_arn"]["value"] == "${aws_s3_bucket.this.arn}"


# --- Budget ---


def test_budget_cost_monthly(modules: dict[str, dict[str, list[Any]]]) -> None:
    body = single_resource(modules["budget"], "aws_budgets_budget")
    assert body["budget_type"] == "COST"
    assert body["time_unit"] == "MONTHLY"
    assert body["limit_unit"] == "${var.limit_unit}"
    assert "var.limit_amount" in body["limit_amount"]


def test_budget_notifications(modules: dict[str, dict[str, list[Any]]]) -> None:
    check_budget_notifications(modules["budget"])


def test_budget_topic_encrypted(modules: dict[str, dict[str, list[Any]]]) -> None:
    topic = single_resource(modules["budget"], "aws_sns_topic")
    assert topic["kms_master_key_id"] == "${local.topic_kms_key_id}"
    expression = modules["budget"]["locals"][0]["topic_kms_key_id"]
    assert "aws_kms_key.sns[0].arn" in expression
    assert '"alias/aws/sns"' in expression
    key = single_resource(modules["budget"], "aws_kms_key")
    assert key["enable_key_rotation"] is True


def test_budget_kms_key_admits_budgets(
    modules: dict[str, dict[str, list[Any]]],
) -> None:
    document = typed(modules["budget"], "data")[("aws_iam_policy_document", "sns_key")]
    statements = {s["sid"]: s for s in document["statement"]}
    budgets = statements["BudgetsEncryptsAlerts"]
    assert budgets["principals"][0]["identifiers"] == ["budgets.amazonaws.com"]
    assert set(budgets["actions"]) == {"kms:GenerateDataKey*", "kms:Decrypt"}
    assert statements["AccountAdministersKey"]["actions"] == ["kms:*"]


def test_budget_topic_policy_admits_budgets(
    modules: dict[str, dict[str, list[Any]]],
) -> None:
    policy = single_resource(modules["budget"], "aws_sns_topic_policy")
    assert policy["arn"] == BUDGET_TOPIC_ARN
    assert policy["policy"] == "${data.aws_iam_policy_document.alerts_topic.json}"
    document = typed(modules["budget"], "data")[
        ("aws_iam_policy_document", "alerts_topic")
    ]
    statements = {s["sid"]: s for s in document["statement"]}
    publish = statements["BudgetsPublishAlerts"]
    assert publish["effect"] == "Allow"
    assert publish["actions"] == ["SNS:Publish"]
    assert publish["resources"] == [BUDGET_TOPIC_ARN]
    assert publish["principals"][0] == {
        "type": "Service",
        "identifiers": ["budgets.amazonaws.com"],
    }
    conditions = {c["variable"]: c for c in publish["condition"]}
    assert conditions["aws:SourceAccount"]["values"] == ["${local.account_id}"]
    assert conditions["aws:SourceArn"]["test"] == "ArnLike"


def test_budget_email_subscription_optional(
    modules: dict[str, dict[str, list[Any]]],
) -> None:
    subscription = single_resource(modules["budget"], "aws_sns_topic_subscription")
    assert subscription["protocol"] == "email"
    assert subscription["topic_arn"] == BUDGET_TOPIC_ARN
    assert subscription["count"] == '${var.notification_email == "" ? 0 : 1}'
    email_subscribers = modules["budget"]["locals"][0]["email_subscribers"]
    assert (
        email_subscribers
        == '${var.notification_email == "" ? [] : [var.notification_email]}'
    )


# --- Planted changes: each check fails on a copy with one defect ---

PLANTED = [
    pytest.param(
        "modules/budget/main.tf",
        "threshold                  = 60\n",
        "threshold                  = 70\n",
        "budget",
        check_budget_notifications,
        id="budget-threshold-70",
    ),
    pytest.param(
        "modules/budget/main.tf",
        'notification_type          = "FORECASTED"',
        'notification_type          = "ACTUAL"',
        "budget",
        check_budget_notifications,
        id="budget-forecast-as-actual",
    ),
    pytest.param(
        "modules/data_lake/main.tf",
        "bucket_key_enabled = true",
        "bucket_key_enabled = false",
        "data_lake",
        check_encryption,
        id="bucket-key-off",
    ),
    pytest.param(
        "modules/data_lake/main.tf",
        'status = "Enabled"\n  }\n}',
        'status = "Suspended"\n  }\n}',
        "data_lake",
        check_versioning,
        id="versioning-suspended",
    ),
    pytest.param(
        "modules/data_lake/main.tf",
        "restrict_public_buckets = true",
        "restrict_public_buckets = false",
        "data_lake",
        check_public_access_block,
        id="public-buckets-unrestricted",
    ),
    pytest.param(
        "modules/data_lake/main.tf",
        '"BucketOwnerEnforced"',
        '"ObjectWriter"',
        "data_lake",
        check_ownership,
        id="ownership-object-writer",
    ),
    pytest.param(
        "modules/data_lake/variables.tf",
        "default     = 90",
        "default     = 365",
        "data_lake",
        check_lifecycle,
        id="noncurrent-365-days",
    ),
    pytest.param(
        "modules/data_lake/main.tf",
        'values   = ["false"]',
        'values   = ["true"]',
        "data_lake",
        check_tls_only_policy,
        id="tls-condition-inverted",
    ),
    pytest.param(
        "providers.tf",
        "      environment   = var.environment\n",
        "",
        "root",
        check_provider_tags,
        id="environment-tag-missing",
    ),
    pytest.param(
        "versions.tf",
        'version = "~> 6.0"',
        'version = ">= 6.0"',
        "root",
        check_aws_pinned,
        id="provider-unpinned",
    ),
]


@pytest.mark.parametrize(("relative", "old", "new", "module_name", "check"), PLANTED)
def test_check_fails_on_planted_defect(
    tmp_path: Path,
    relative: str,
    old: str,
    new: str,
    module_name: str,
    check: Any,
) -> None:
    root = copy_tree(tmp_path)
    check(load_module(root / MODULE_DIRS[module_name]))
    plant(root, relative, old, new)
    with pytest.raises(AssertionError):
        check(load_module(root / MODULE_DIRS[module_name]))
