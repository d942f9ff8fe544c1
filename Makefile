# The two commands of the README: `make pipeline` (whole pipeline on the real data) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# These machines have no network: every telemetry call would hang or log errors.
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
export DVC_NO_ANALYTICS=1 ORT_DISABLE_TELEMETRY=1 TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install chromium pipeline test test-fast lint lock benchmark serve serve-model deploy drift drift-study dashboard transfer-search
install: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip wheel
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps musicnn==0.1.0
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/dvc config --local core.check_update false 2>/dev/null || true
	touch $@

pipeline: install
	$(BIN)/genre data sync
	$(BIN)/dvc repro
	$(BIN)/dvc push --quiet

# the dashboard test drives a real headless Chromium (Debian's package); installed here when missing
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

test: install chromium
	$(BIN)/python -m pytest

# The inner loop: every test that neither reads the pipeline's artifacts nor runs a pipeline, server or
# training (markers `artifacts`, `slow`; see tests/conftest.py). No DVC call; under a minute.
test-fast: install
	$(BIN)/python -m pytest -m "not slow and not artifacts"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy musicgenre/ stages/ flows/ monitoring/

benchmark: install  # feature extractor vs naive librosa calls, throughput, serving: writes BENCHMARKS.md
	$(BIN)/python -m benchmarks.run

# The whole pipeline at N = params.scale.benchmark.tracks (override: SCALE_TRACKS="173 500") on scale corpora in
# scratch clones outside the repo: per-stage wall time and peak RSS, plot and projection into BENCHMARKS.md.
SCALE_TRACKS ?=
.PHONY: scale-benchmark
scale-benchmark: install
	$(BIN)/python -m benchmarks.scale $(if $(SCALE_TRACKS),--tracks $(SCALE_TRACKS))

.PHONY: host-projection
host-projection: install  # 4 fresh pipeline runs (reference commit and HEAD, native and AVX2 code paths, ~30 min)
	$(BIN)/python -m benchmarks.host_projection

.PHONY: evaluate-memory
evaluate-memory: install  # evaluate's CV on the real tables tiled to 1000-10000 tracks: peak RSS per phase (~25 min)
	$(BIN)/python -m benchmarks.evaluate_memory
	$(BIN)/python -m benchmarks.scale --report-only

serve: install  # scheduled deployments (weekly retraining, daily drift) on a Prefect server at 127.0.0.1:4200
	$(BIN)/python -m flows.serve

serve-model: install  # the champion over HTTP on 127.0.0.1:8080 (POST /predict with the audio file as the body)
	$(BIN)/genre-serve

deploy: install  # the same deployments on a work pool of $$PREFECT_API_URL's server; run by `prefect worker start`
	$(BIN)/python -m flows.deploy

BATCH ?= ../shared/data/modern
drift: install  # score BATCH (a folder of audio) with the champion, drift report vs GTZAN train; exit 3 on drift
	$(BIN)/python -m monitoring.cli score-batch $(BATCH)

transfer-search: install  # the grid behind transfer_ridge with its nested grouped-CV estimate: docs/MODEL_SEARCH.md
	$(BIN)/python -m benchmarks.transfer_search

drift-study: install  # the drift verdict's calibration + accuracy-estimate validation: docs/MONITORING.md
	$(BIN)/python -m monitoring.study

dashboard: install  # the Evidently dashboards of the scored batches at http://127.0.0.1:8000
	$(BIN)/evidently ui --workspace monitoring/workspace --host 127.0.0.1 --port 8000

lock:
	$(BIN)/pip freeze --exclude-editable | grep -v '^musicnn==' > requirements.lock.new && mv requirements.lock.new requirements.lock
