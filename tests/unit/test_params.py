from datetime import date
from pathlib import Path

import pytest
import yaml

from cardfraud.params import GenerateParams, ParamsError, load_params, parse_section
from cardfraud.paths import project_root

PARAMS = project_root() / "params.yaml"


def write_params(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load(PARAMS.read_text())
    edit(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_load_params_project_file():
    params = load_params(PARAMS)
    assert params.generate.rows == 1_000_000
    assert params.generate.start == date(2025, 1, 1)
    assert params.generate.write_csv is False


def test_load_params_boolean_as_string_rejected(tmp_path):
    path = write_params(tmp_path, lambda raw: raw["generate"].update(write_csv="false"))
    expected = r"generate\.write_csv: Input should be a valid boolean \(got 'false'\)"
    with pytest.raises(ParamsError, match=expected):
        load_params(path)


def test_load_params_number_as_string_rejected(tmp_path):
    path = write_params(tmp_path, lambda raw: raw["train"].update(n_estimators="300"))
    with pytest.raises(ParamsError, match=r"train\.n_estimators"):
        load_params(path)


def test_load_params_unknown_key_rejected(tmp_path):
    path = write_params(tmp_path, lambda raw: raw["train"].update(depth=3))
    with pytest.raises(ParamsError, match=r"train\.depth"):
        load_params(path)


def test_load_params_missing_section(tmp_path):
    path = write_params(tmp_path, lambda raw: raw.pop("evaluate"))
    with pytest.raises(ParamsError, match="section 'evaluate' is missing"):
        load_params(path)


def test_load_params_unknown_section(tmp_path):
    path = write_params(tmp_path, lambda raw: raw.update(extra={}))
    with pytest.raises(ParamsError, match=r"unknown section\(s\) \['extra'\]"):
        load_params(path)


def test_parse_section_bad_date():
    values = yaml.safe_load(PARAMS.read_text())["generate"] | {"start": "01/02/2025"}
    with pytest.raises(
        ParamsError, match=r"generate\.start: '01/02/2025' is not an ISO"
    ):
        parse_section(GenerateParams, values, section="generate")


def test_parse_section_negative_rate():
    values = yaml.safe_load(PARAMS.read_text())["generate"] | {"fraud_rate": -0.1}
    with pytest.raises(ParamsError, match=r"generate\.fraud_rate"):
        parse_section(GenerateParams, values, section="generate")
