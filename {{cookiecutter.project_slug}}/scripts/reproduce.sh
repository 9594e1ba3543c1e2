#!/usr/bin/env bash
# Re-run a logged training run and compare its metrics with the logged ones.
#
#   bash scripts/reproduce.sh <run_id>                   # same overrides, seed and code
#   bash scripts/reproduce.sh <run_id> --force           # even if the code has changed
#   bash scripts/reproduce.sh <run_id> --tolerance 1e-4  # allowed relative difference
#
# Refuses (exit 2) when the working tree is not at the run's git commit or has uncommitted
# changes, and prints how to check the commit out. The re-run is a new MLflow run tagged
# reproduces=<run_id>. Exit 0: every metric within the tolerance (default 1e-6); exit 1:
# a metric differs. trainer.deterministic=true makes CPU runs identical.
# Run it inside the project's environment: `poetry run bash scripts/reproduce.sh <run_id>`.
set -euo pipefail

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# This project's `src` for Python started here,
# whatever other project is installed in the environment.
export PYTHONPATH="$PROJECT_ROOT${PYTHONPATH:+:$PYTHONPATH}"
PYTHON="$(command -v python || command -v python3 || true)"
if [[ -z "$PYTHON" ]]; then
    echo "reproduce.sh: error: no python on PATH; run: poetry run bash scripts/reproduce.sh" >&2
    exit 2
fi
cd "$PROJECT_ROOT"
exec "$PYTHON" -m src.utils.commands.reproduce "$@"
