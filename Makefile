# Entry points of the project. `make pipeline` and `make test` work on a fresh machine:
# they install uv, the locked Python packages and the Jupyter kernel before running.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export UV_PYTHON_DOWNLOADS := never
export UV_COMPILE_BYTECODE := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export BENTOML_DO_NOT_TRACK := true
export FEAST_USAGE := False
export PYTHONHASHSEED := 0

PYTHON ?= python3
UV := $(PYTHON) -m uv
RUN := $(UV) run --frozen
PORT ?= 3000

.PHONY: help setup pipeline smoke-notebooks test test-all serve site site-check bench mlflow-ui lab lint format clean

help:  ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 18

.venv/.installed: pyproject.toml uv.lock datagen/pyproject.toml .python-version
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(UV) sync --frozen --all-packages
	$(RUN) cardfraud notebook install-kernel
	$(RUN) dvc config --local core.analytics false
	@touch $@

setup: .venv/.installed  ## Install uv, the locked packages and the 'cardfraud' Jupyter kernel.

pipeline: setup  ## Run the whole DVC pipeline (1,000,000 transactions) and show its metrics.
	$(RUN) cardfraud check-params
	$(RUN) dvc repro
	$(RUN) dvc metrics show

SMOKE_OUT ?= build/smoke-executed

smoke-notebooks: setup  ## Execute every notebook at smoke size into build/smoke-executed (SMOKE_OUT=DIR).
	$(RUN) cardfraud notebook smoke --out $(SMOKE_OUT)

test: setup  ## Run the test suite (the slow statistical suite excluded).
	$(RUN) pytest -m "not slow"

test-all: setup  ## Run every test, including the slow full-size statistical suite.
	$(RUN) pytest

WORKERS ?= 2

serve: setup  ## Serve the champion on 127.0.0.1:$(PORT) with $(WORKERS) workers (README "Scoring service").
	$(RUN) cardfraud serve --port $(PORT) --workers $(WORKERS)

site: setup  ## Build the report site into _site/ (quarto where installed, else nbconvert).
	$(RUN) cardfraud site build --out _site

site-check: setup  ## Check that every page, listing and embed of the site resolves.
	$(RUN) cardfraud site check --executed-dir reports/executed

bench: setup  ## Run the benchmarks and print the results (docs/benchmarks.md keeps them).
	$(RUN) cardfraud bench

mlflow-ui: setup  ## Browse runs and the model registry on 127.0.0.1:5000.
	$(RUN) mlflow ui --backend-store-uri sqlite:///state/mlflow.db --host 127.0.0.1 --port 5000

lab: setup  ## Start JupyterLab with the 'cardfraud' kernel on 127.0.0.1.
	$(RUN) jupyter lab --ip 127.0.0.1 --no-browser notebooks/

lint:  setup ## Run ruff and the pre-commit hooks on every file.
	$(RUN) pre-commit run --all-files

format: setup  ## Format the code with ruff.
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

# AWS target of deploy, rollback and teardown: ENDPOINT_URL=http://127.0.0.1:PORT for
# a local stand-in such as a moto server, or ACCOUNT_ID=<12 digits> for a real account.
# Neither is set by default, so these targets fail until one is given. DRY_RUN=1 prints
# the plan and changes nothing.
.PHONY: cost deploy rollback teardown
AWS_TARGET = $(if $(ENDPOINT_URL),--endpoint-url $(ENDPOINT_URL),$(if $(ACCOUNT_ID),--real-aws --account-id $(ACCOUNT_ID),))
DRY_RUN_FLAG = $(if $(filter 1 true yes,$(DRY_RUN)),--dry-run,)

cost: setup  ## Print the estimated monthly AWS bill per component; fail over the £50 budget.
	$(RUN) cardfraud deploy cost $(if $(TFVARS),--tfvars $(TFVARS),)

deploy: setup  ## Deploy the MLflow champion blue/green: IMAGE_URI=... and ENDPOINT_URL= or ACCOUNT_ID=.
	$(RUN) cardfraud deploy release --image-uri "$(IMAGE_URI)" $(AWS_TARGET) $(DRY_RUN_FLAG)

rollback: setup  ## Return the endpoint to its previous configuration (ENDPOINT_URL= or ACCOUNT_ID=).
	$(RUN) cardfraud deploy rollback $(AWS_TARGET) $(DRY_RUN_FLAG)

teardown: setup  ## Delete the AWS stack; STATE_BUCKET=name is kept unless ALL=1.
	$(RUN) cardfraud deploy teardown $(AWS_TARGET) $(if $(STATE_BUCKET),--state-bucket $(STATE_BUCKET),) $(if $(filter 1,$(ALL)),--all,) $(DRY_RUN_FLAG)

clean:  ## Remove the smoke workspace and the built site (pipeline outputs stay).
	rm -rf .smoke _site build
