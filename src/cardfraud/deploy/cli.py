"""``cardfraud deploy``: release, rollback, teardown, cost estimate and cost report.

Every command that calls AWS needs a target: ``--endpoint-url`` for a local
stand-in such as a moto server, or ``--real-aws --account-id ID`` for an account.
There is no default target.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from cardfraud.deploy.aws import AwsTarget, AwsTargetError
from cardfraud.deploy.settings import DeploySettings, DeploySettingsError, load_settings

app = typer.Typer(
    help="Deploy the champion to SageMaker, roll back, tear down, estimate cost.",
    no_args_is_help=True,
)

EndpointUrl = Annotated[
    str | None,
    typer.Option(help="URL of a local AWS stand-in, e.g. http://127.0.0.1:5000."),
]
RealAws = Annotated[bool, typer.Option("--real-aws", help="Act on a real AWS account.")]
AccountId = Annotated[
    str | None,
    typer.Option(help="12-digit id of the account the credentials must belong to."),
]
Region = Annotated[
    str | None, typer.Option(help="AWS region; default from infra/deploy.yaml.")
]
SettingsPath = Annotated[
    Path | None, typer.Option(help="Deploy settings; default infra/deploy.yaml.")
]
Environment = Annotated[
    str | None, typer.Option(help="Stack environment (dev, staging, prod).")
]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Print what would change; change nothing.")
]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` on stderr and return the exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=code)


def settings_and_target(
    *,
    settings_path: Path | None,
    environment: str | None,
    region: str | None,
    endpoint_url: str | None,
    real_aws: bool,
    account_id: str | None,
) -> tuple[DeploySettings, AwsTarget]:
    """Load the settings and resolve the AWS target, exiting on a bad one."""
    overrides: dict[str, Any] = {}
    if environment:
        overrides["environment"] = environment
    if region:
        overrides["region"] = region
    try:
        settings = load_settings(settings_path, overrides)
        target = AwsTarget.resolve(
            region=settings.region,
            endpoint_url=endpoint_url,
            account_id=account_id,
            real_aws=real_aws,
        )
    except (DeploySettingsError, AwsTargetError) as error:
        raise fail(str(error)) from error
    return settings, target


def print_json(value: Any) -> None:
    """Print a value as indented JSON on stdout."""
    typer.echo(json.dumps(value, indent=2, default=str))


@app.command()
def release(
    image_uri: Annotated[
        str, typer.Option(help="ECR image URI of the Bento container, with its tag.")
    ],
    tracking_uri: Annotated[
        str | None,
        typer.Option(help="MLflow tracking URI; default the project's SQLite store."),
    ] = None,
    model_name: Annotated[
        str | None,
        typer.Option(help="Registered model name; default from params.yaml."),
    ] = None,
    alias: Annotated[str, typer.Option(help="Registry alias to deploy.")] = "champion",
    endpoint_url: EndpointUrl = None,
    real_aws: RealAws = False,
    account_id: AccountId = None,
    region: Region = None,
    environment: Environment = None,
    settings_path: SettingsPath = None,
    dry_run: DryRun = False,
) -> None:
    """Deploy the MLflow champion blue/green, smoke-test it and print a report."""
    from mlflow.exceptions import MlflowException

    from cardfraud.deploy.sagemaker import Deployer, DeployError, Release
    from cardfraud.params import load_params
    from cardfraud.paths import Workspace, project_root
    from cardfraud.registry import find_alias_version, make_client

    settings, target = settings_and_target(
        settings_path=settings_path,
        environment=environment,
        region=region,
        endpoint_url=endpoint_url,
        real_aws=real_aws,
        account_id=account_id,
    )
    root = project_root()
    name = model_name or load_params(root / "params.yaml").registry.model_name
    uri = tracking_uri or Workspace(root).tracking_uri()
    try:
        version = find_alias_version(make_client(uri), model_name=name, alias=alias)
    except MlflowException as error:
        # A SQLite registry reports a missing alias as an invalid parameter, which
        # find_alias_version passes on.
        raise fail(
            f"cannot resolve alias {alias!r} of {name!r} at {uri}: {error.message}; "
            "register a champion first (dvc repro register)"
        ) from error
    if version is None:
        raise fail(
            f"registered model {name!r} has no alias {alias!r} at {uri}; register "
            "a champion first (dvc repro register)"
        )
    try:
        account = target.check_account()
        deployer = Deployer(
            settings,
            sagemaker=target.client("sagemaker"),
            runtime=target.client("sagemaker-runtime"),
            ssm=target.client("ssm"),
            account_id=account,
            cloudwatch=target.client("cloudwatch"),
        )
        report = deployer.deploy(
            Release(
                model_name=name,
                model_version=str(version.version),
                run_id=version.run_id or "",
                image_uri=image_uri,
            ),
            dry_run=dry_run,
        )
    except (AwsTargetError, DeployError) as error:
        raise fail(str(error), code=1) from error
    print_json(report.to_dict())


@app.command()
def rollback(
    endpoint_url: EndpointUrl = None,
    real_aws: RealAws = False,
    account_id: AccountId = None,
    region: Region = None,
    environment: Environment = None,
    settings_path: SettingsPath = None,
    dry_run: DryRun = False,
) -> None:
    """Return the endpoint to the configuration its live one replaced."""
    from cardfraud.deploy.sagemaker import Deployer, DeployError

    settings, target = settings_and_target(
        settings_path=settings_path,
        environment=environment,
        region=region,
        endpoint_url=endpoint_url,
        real_aws=real_aws,
        account_id=account_id,
    )
    try:
        deployer = Deployer(
            settings,
            sagemaker=target.client("sagemaker"),
            runtime=target.client("sagemaker-runtime"),
            ssm=target.client("ssm"),
            account_id=target.check_account(),
        )
        report = deployer.rollback(dry_run=dry_run)
    except (AwsTargetError, DeployError) as error:
        raise fail(str(error), code=1) from error
    print_json(report.to_dict())


@app.command()
def teardown(
    state_bucket: Annotated[
        str | None,
        typer.Option(help="Terraform state bucket: kept, or deleted with --all."),
    ] = None,
    delete_all: Annotated[
        bool, typer.Option("--all", help="Delete the state bucket too.")
    ] = False,
    terraform: Annotated[
        bool,
        typer.Option(
            "--terraform/--no-terraform",
            help="Run `terraform destroy` in infra/terraform before the sweep.",
        ),
    ] = True,
    feast_table: Annotated[
        list[str] | None,
        typer.Option(
            help="Feast online table to delete, by name; default the Terraform "
            "variable feast_online_tables."
        ),
    ] = None,
    endpoint_url: EndpointUrl = None,
    real_aws: RealAws = False,
    account_id: AccountId = None,
    region: Region = None,
    environment: Environment = None,
    settings_path: SettingsPath = None,
    dry_run: DryRun = False,
) -> None:
    """Delete everything of the stack, then list what remains (nothing, or fail)."""
    from cardfraud.deploy.cost import terraform_dir, terraform_variables
    from cardfraud.deploy.teardown import Stack, TeardownError
    from cardfraud.deploy.teardown import teardown as run_teardown

    settings, target = settings_and_target(
        settings_path=settings_path,
        environment=environment,
        region=region,
        endpoint_url=endpoint_url,
        real_aws=real_aws,
        account_id=account_id,
    )
    tables = feast_table or terraform_variables(terraform_dir())["feast_online_tables"]
    stack = Stack(
        project=settings.project,
        environment=settings.environment,
        feast_tables=tuple(tables),
        state_bucket=state_bucket,
    )
    try:
        target.check_account()
        report = run_teardown(
            target,
            stack,
            dry_run=dry_run,
            include_state=delete_all,
            terraform_folder=terraform_dir() if terraform else None,
        )
    except (AwsTargetError, TeardownError) as error:
        raise fail(str(error), code=1) from error
    print_json(report.__dict__)


@app.command()
def cost(
    prices: Annotated[
        Path | None,
        typer.Option(help="Price table; default infra/pricing/<region>.yaml."),
    ] = None,
    tfvars: Annotated[
        Path | None,
        typer.Option(help="Terraform variable values overriding the defaults."),
    ] = None,
    settings_path: SettingsPath = None,
    dry_run: DryRun = False,
) -> None:
    """Print the estimated monthly bill per component; exit 1 over the budget.

    The estimate calls no AWS API, so --dry-run changes nothing.
    """
    from cardfraud.deploy.cost import (
        CostError,
        estimate,
        format_estimate,
        load_price_table,
        terraform_dir,
        terraform_resource_counts,
        terraform_variables,
    )
    from cardfraud.paths import project_root

    try:
        settings = load_settings(settings_path)
        table_path = prices or (
            project_root() / "infra" / "pricing" / f"{settings.region}.yaml"
        )
        result = estimate(
            settings=settings,
            table=load_price_table(table_path),
            variables=terraform_variables(terraform_dir(), tfvars),
            resource_counts=terraform_resource_counts(terraform_dir()),
        )
    except (DeploySettingsError, CostError) as error:
        raise fail(str(error)) from error
    typer.echo(format_estimate(result))
    if not result.within_budget:
        raise fail(
            f"estimated £{result.total_gbp:.2f} a month exceeds the budget of "
            f"£{result.budget_gbp:.2f}; cut service hours, instance size or count",
            code=1,
        )


@app.command("cost-report")
def cost_report(
    days: Annotated[int, typer.Option(help="Days before today to cover.")] = 7,
    whole_account: Annotated[
        bool,
        typer.Option(
            "--whole-account", help="Report the whole account, not the project tag."
        ),
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Also write the markdown report here.")
    ] = None,
    endpoint_url: EndpointUrl = None,
    real_aws: RealAws = False,
    account_id: AccountId = None,
    settings_path: SettingsPath = None,
    dry_run: DryRun = False,
) -> None:
    """Print the cost per service from Cost Explorer over the last days."""
    from datetime import timedelta

    from cardfraud.deploy.cost_report import (
        COST_EXPLORER_REGION,
        cost_request,
        format_cost_report,
        weekly_cost_report,
    )

    settings, target = settings_and_target(
        settings_path=settings_path,
        environment=None,
        region=None,
        endpoint_url=endpoint_url,
        real_aws=real_aws,
        account_id=account_id,
    )
    end = datetime.now(UTC).date()
    project = None if whole_account else settings.project
    if dry_run:
        print_json(
            cost_request(start=end - timedelta(days=days), end=end, project=project)
        )
        return
    report = weekly_cost_report(
        target.client("ce", region=COST_EXPLORER_REGION),
        end=end,
        days=days,
        project=project,
    )
    text = format_cost_report(report)
    typer.echo(text)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
