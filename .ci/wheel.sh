#!/usr/bin/env bash
# The lab as a user installs it: a wheel built from this checkout, installed into a fresh
# virtualenv outside it, run from an empty folder (no checkout, no PYTHONPATH): a run, a
# two-job sweep with its report, the report command, a tab-completion query.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$root/.venv/bin/pip" wheel --quiet --no-deps --wheel-dir "$work/dist" "$root"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet "$work"/dist/*.whl
"$work/venv/bin/pip" check

mkdir "$work/empty"
cd "$work/empty"
export PATH="$work/venv/bin:$PATH"
unset PYTHONPATH FASHION_MNIST_DIR MLFLOW_TRACKING_URI
step() { echo "wheel: $*"; }

step "python -m experiments lists the commands"
python -m experiments > commands.txt
grep -q "gradlab-train" commands.txt

step "a one-epoch synthetic run"
gradlab-train data=synthetic training.epochs=1 > run.log 2>&1 || { cat run.log; exit 1; }

step "a two-job sweep and its report"
gradlab-train -m data=synthetic training.epochs=1 activation=relu,elu \
  hydra.sweep.dir=sweep > sweep.log 2>&1 || { cat sweep.log; exit 1; }
test -s sweep/report/report.html
grep -q "^sweep: 2 of 2 ended" sweep.log

step "the report command"
gradlab-report > report.log 2>&1 || { cat report.log; exit 1; }
test -s reports/gradient-lab/report.html

step "tab completion of a group's options"
line="gradlab-train activation="
COMP_LINE="$line" COMP_POINT=${#line} gradlab-train -sc query=bash > completion.txt
grep -qw "activation=prelu" completion.txt
step "ok"
