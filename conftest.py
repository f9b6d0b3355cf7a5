"""Test-session settings that apply to every collected path, notebooks included.

Notebooks run by nbval write to the smoke workspace named by ``$CARDFRAUD_SMOKE_DIR``;
pointing it at a fresh temporary folder keeps the pipeline's own outputs untouched.
"""

import os
import tempfile

from cardfraud.paths import SMOKE_DIR_ENV

TELEMETRY_OFF = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "BENTOML_DO_NOT_TRACK": "true",
    "FEAST_USAGE": "False",
}


def pytest_configure(config):
    """Point the smoke workspace at a temporary folder and turn telemetry off."""
    os.environ[SMOKE_DIR_ENV] = tempfile.mkdtemp(prefix="cardfraud-nbval-")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.update(TELEMETRY_OFF)
