"""Copy the champion from the MLflow registry into bento/model/ for a Bento build.

Usage: ``python bento/package_model.py [--alias champion] [--out bento/model]``. The
folder holds the MLflow model, serving.json (name, version, alias, run id), the
lineage, the model card and the parameters file, so a container serves the model
with no MLflow server (``CARDFRAUD_MODEL_DIR``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from cardfraud.params import load_params
from cardfraud.paths import Workspace, project_root
from cardfraud.served_model import package_model


def main() -> None:
    """Parse the arguments and write the packaged model folder."""
    root = project_root()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alias", default="champion", help="Registry alias to pack.")
    parser.add_argument(
        "--out",
        type=Path,
        default=root / "bento" / "model",
        help="Output folder, replaced if it exists.",
    )
    parser.add_argument(
        "--params",
        type=Path,
        default=Path(os.environ.get("CARDFRAUD_PARAMS", root / "params.yaml")),
        help="Parameters file the model was trained with.",
    )
    parser.add_argument(
        "--workspace",
        type=Path,
        default=Path(os.environ.get("CARDFRAUD_WORKSPACE", root)),
        help="Workspace whose MLflow store holds the model.",
    )
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    params = load_params(arguments.params)
    serving = package_model(
        tracking_uri=Workspace(arguments.workspace.resolve()).tracking_uri(),
        model_name=params.registry.model_name,
        alias=arguments.alias,
        params_path=arguments.params,
        destination=arguments.out,
    )
    print(json.dumps(serving, indent=2))


if __name__ == "__main__":
    main()
