# Fresh machine: `make train` sets up and runs the default experiment; `make test` sets up
# and runs the tests. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED_DATA := $(abspath ../shared/data/fashion-mnist)
ifneq ($(wildcard $(SHARED_DATA)/train-images-idx3-ubyte.gz),)
export FASHION_MNIST_DIR ?= $(SHARED_DATA)
endif
# The real 10,000-digit MNIST subset the data tests read (data=mnist data.dir=...).
SHARED_MNIST := $(abspath ../shared/data/mnist-10k)
ifneq ($(wildcard $(SHARED_MNIST)/train-images-idx3-ubyte.gz),)
export MNIST_DIR ?= $(SHARED_MNIST)
endif
# Extra Hydra overrides for `make train`, e.g. make train ARGS="activation=prelu"
ARGS ?=
# Options of the report, e.g. make report REPORT_ARGS="--parent-run <run id>"
REPORT_ARGS ?=
# `make study` (the command `gradlab-study`, src/experiments/sweeps/study.py): every study of the
# reference notebook as one sweep, then one report of them all. STUDY_EPOCHS=2 shortens
# every study (model A's training too); STUDY_PRESETS=a,b picks presets (default: the
# chapter's, then the CNN study's: docs/conv.md); STUDY_ARGS adds overrides, e.g.
# STUDY_ARGS="hydra/launcher=joblib hydra.launcher.n_jobs=2".
STUDY_PRESETS ?=
STUDY_EPOCHS ?=
STUDY_ARGS ?=
# STUDY_SEEDS=5 (or SEEDS=5) runs every study over seeds 42..46 in the same sweep; the
# report then compares configurations with intervals (docs/report.md: what N buys).
SEEDS ?= 1
STUDY_SEEDS ?= $(SEEDS)
# `make server`: a shared MLflow tracking server (runs: tracking=server). Loopback only
# unless SERVER_HOST says otherwise, and then only with SERVER_AUTH=basic (MLflow's
# basic-auth app; admin from MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD);
# SERVER_STORE may be a PostgreSQL URI (pip install -e ".[postgres]").
SERVER_HOST ?= 127.0.0.1
SERVER_PORT ?= 5001
SERVER_STORE ?= sqlite:///$(CURDIR)/tracking-server/mlflow.db
SERVER_ARTIFACTS ?= $(CURDIR)/tracking-server/artifacts
SERVER_AUTH ?= none
SERVER_ALLOWED_HOSTS ?=

.PHONY: setup train study test test-slow test-all lint bench ui server clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	# An older .venv may hold hydra-optuna-sweeper (optuna < 3), replaced by src/hydra_plugins.
	$(BIN)/pip uninstall --quiet --yes hydra-optuna-sweeper 2>/dev/null || true
	touch $@

train: setup
	$(BIN)/python -m experiments.train $(ARGS)

# Runs land in experiment notebook-study; the page: multirun/study/report/report.html (and
# on the sweep's parent run). Re-running skips the studies that already finished.
study: setup
	@case '$(STUDY_SEEDS)' in ''|0*|*[!0-9]*) echo "error: STUDY_SEEDS=$(STUDY_SEEDS): \
	a number of seeds, 1 or more, is allowed" >&2; exit 2;; esac
	$(BIN)/python -m experiments.sweeps.study --seeds $(STUDY_SEEDS) \
		$(if $(STUDY_EPOCHS),--epochs $(STUDY_EPOCHS)) \
		$(if $(STUDY_PRESETS),--presets $(STUDY_PRESETS)) $(STUDY_ARGS)

# Tests run on every core (pytest-xdist); tests that share one end-to-end sweep run on
# the same worker (xdist_group), so it is made once. The 12 slowest are listed at the end.
# `make test` is the suite to run while working (about 3 minutes on 2 cores): every test
# but those marked slow, the end-to-end sweeps on real launchers, servers and Slurm in
# child processes (`make test-slow`, about 7 minutes). CI runs both (.ci/run);
# `make test-all` runs them in one go.
PYTEST_PARALLEL ?= -n auto --dist loadgroup --durations=12

test: setup
	$(BIN)/pytest -q $(PYTEST_PARALLEL) -m "not slow"

test-slow: setup
	$(BIN)/pytest -q $(PYTEST_PARALLEL) -m slow

test-all: setup
	$(BIN)/pytest -q $(PYTEST_PARALLEL)

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: setup
	$(BIN)/python -m benchmarks.run_all

# The comparison page of the runs in ./mlflow.db (reports/<experiment>/report.html).
.PHONY: report
report: setup
	$(BIN)/python -m experiments.report $(REPORT_ARGS)

# The MLflow UI on ./mlflow.db; prints the address of the experiment's runs table.
UI_ARGS ?=
ui: setup
	$(BIN)/python -m experiments.tracking.ui $(UI_ARGS)

server: setup
	mkdir -p $(SERVER_ARTIFACTS)
	$(BIN)/python -m experiments.tracking.server --host $(SERVER_HOST) --port $(SERVER_PORT) \
		--backend-store-uri $(SERVER_STORE) --artifacts $(SERVER_ARTIFACTS) --auth $(SERVER_AUTH) \
		$(if $(SERVER_ALLOWED_HOSTS),--allowed-hosts $(SERVER_ALLOWED_HOSTS))

clean:
	rm -rf outputs multirun mlruns mlflow.db .pytest_cache .ruff_cache reports
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
