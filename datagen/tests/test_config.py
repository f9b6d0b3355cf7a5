from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

import fraudgen
from fraudgen.config import ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_match_documented_values():
    config = fraudgen.build_config()
    assert config.rows == 1_000_000
    assert config.cards is None
    assert config.n_days == 183
    assert config.start == date(2025, 1, 1)
    assert config.fraud_rate == 0.002
    assert config.labels.max_delay_days == 120


def test_file_values_override_defaults(tmp_path):
    path = write(
        tmp_path, "rows: 5000\nscenarios:\n  mimicry:\n    payments: {min: 2, max: 2}\n"
    )
    config = load_config(path)
    assert config.rows == 5000
    assert config.scenarios.mimicry.payments.min == 2
    assert config.scenarios.card_testing.payments.max == 30


def test_overrides_take_precedence_over_file(tmp_path):
    path = write(tmp_path, "rows: 5000\nseed: 1\n")
    config = load_config(path, overrides={"seed": 99})
    assert config.seed == 99
    assert config.rows == 5000


def test_cards_replaces_default_rows(tmp_path):
    config = load_config(write(tmp_path, "cards: 300\n"))
    assert config.cards == 300
    assert config.rows is None


def test_end_replaces_default_days(tmp_path):
    config = load_config(write(tmp_path, "start: 2025-03-01\nend: 2025-03-10\n"))
    assert config.n_days == 10
    assert config.last_day == date(2025, 3, 10)


def test_days_override_replaces_file_end(tmp_path):
    config = load_config(write(tmp_path, "end: 2025-03-10\n"), overrides={"days": 4})
    assert config.n_days == 4
    assert config.end is None


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("fraud_rate: -0.1\n", "'fraud_rate'"),
        ("scenario_mix:\n  phishing: 0.2\n", "'scenario_mix.phishing'"),
        ("start: 2025-02-01\nend: 2025-01-01\n", "'end'"),
        ("rowz: 10\n", "'rowz'"),
        ("rows: 10\ncards: 10\n", "'rows' and 'cards'"),
        ("labels:\n  max_delay_days: 150\n", "'labels.max_delay_days'"),
        (
            "scenarios:\n  card_testing:\n    payments: {min: 9, max: 3}\n",
            "card_testing",
        ),
    ],
)
def test_invalid_config_names_key(tmp_path, text, named):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert named in str(caught.value)
    assert "\n" not in str(caught.value)


def test_yaml_syntax_error_names_line(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML at line 3"):
        load_config(write(tmp_path, "rows: 1\nseed: [1,\n"))


def test_missing_file_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path / "absent.yaml")


def test_config_hash_changes_with_seed():
    first = fraudgen.build_config({"seed": 1})
    second = fraudgen.build_config({"seed": 2})
    assert first.config_hash() == fraudgen.build_config({"seed": 1}).config_hash()
    assert first.config_hash() != second.config_hash()
