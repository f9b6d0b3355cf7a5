"""bento/bentofile.yaml builds a Bento with the versions uv.lock pins."""

from __future__ import annotations

import tomllib

import yaml

from cardfraud.paths import project_root


def locked_versions() -> dict[str, str]:
    lock = tomllib.loads((project_root() / "uv.lock").read_text(encoding="utf-8"))
    return {package["name"]: package.get("version", "") for package in lock["package"]}


def test_bentofile_validates_with_bentoml() -> None:
    from bentoml._internal.bento.build_config import BentoBuildConfig

    path = project_root() / "bento" / "bentofile.yaml"
    with path.open(encoding="utf-8") as stream:
        config = BentoBuildConfig.from_yaml(stream)
    assert config.service == "service:FraudScorer"
    envs = {item.name: item.value for item in config.envs}
    assert envs["BENTOML_PORT"] == "8080"
    assert envs["CARDFRAUD_INVOCATIONS_AUTH"] == "iam"


def test_bentofile_pins_locked_versions() -> None:
    config = yaml.safe_load((project_root() / "bento" / "bentofile.yaml").read_text())
    locked = locked_versions()
    for requirement in config["python"]["packages"]:
        name, _, version = requirement.partition("==")
        name = name.split("[")[0]
        assert version, f"{requirement} is not pinned"
        assert locked[name] == version, name


def test_bentofile_wheels_match_package_versions() -> None:
    config = yaml.safe_load((project_root() / "bento" / "bentofile.yaml").read_text())
    locked = locked_versions()
    for wheel in config["python"]["wheels"]:
        name, version = wheel.rsplit("/", 1)[1].split("-")[:2]
        assert locked[name] == version, wheel
