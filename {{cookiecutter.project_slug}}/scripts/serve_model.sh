#!/usr/bin/env bash
# Serve a run's model over REST with `mlflow models serve`, in the current environment.
#
#   poetry run bash scripts/serve_model.sh                # the best trial run of model01
#   poetry run bash scripts/serve_model.sh champion       # models:/model01@champion
#   poetry run bash scripts/serve_model.sh <RUN_ID> --port 5002
#   poetry run bash scripts/serve_model.sh best --experiment model02
#
# Options: --port N (default 5001), --experiment NAME (default model01); anything else goes
# to `mlflow models serve`. It binds 127.0.0.1 only. Health check: GET /ping.
#
# Request:  POST /invocations  {"inputs": [...]}: N×1×28×28 float pixels in [0, 1]
# Response: {"predictions": [...]}: N×10 logits; the argmax of a row is the digit.
#   curl -s http://127.0.0.1:5001/invocations -H 'Content-Type: application/json' \
#        -d "{\"inputs\": $(python -c 'print([[[[0.0] * 28] * 28]])')}"
set -euo pipefail

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# This project's `src` for Python started here (the model server unpickles its classes),
# whatever other project is installed in the environment.
export PYTHONPATH="$PROJECT_ROOT${PYTHONPATH:+:$PYTHONPATH}"
SELECTION="best"
EXPERIMENT="model01"
PORT="5001"
EXTRA=()

usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
fail() { echo "serve_model.sh: error: $*" >&2; exit 1; }

positional_seen=false
while [[ $# -gt 0 ]]; do
    case "$1" in
        --port | -p) [[ $# -ge 2 ]] || fail "$1 needs a value"; PORT="$2"; shift 2 ;;
        --port=*) PORT="${1#*=}"; shift ;;
        --experiment) [[ $# -ge 2 ]] || fail "$1 needs a value"; EXPERIMENT="$2"; shift 2 ;;
        --experiment=*) EXPERIMENT="${1#*=}"; shift ;;
        -h | --help) usage; exit 0 ;;
        -*) EXTRA+=("$1"); shift ;;
        *)
            if $positional_seen; then EXTRA+=("$1"); else SELECTION="$1"; positional_seen=true; fi
            shift ;;
    esac
done
[[ "$PORT" =~ ^[0-9]+$ ]] || fail "--port must be a number, got '$PORT'"

export MLFLOW_DISABLE_TELEMETRY="${MLFLOW_DISABLE_TELEMETRY:-true}"
# `runs:/` and `models:/` URIs are resolved against the tracking store: the project's
# SQLite store unless MLFLOW_TRACKING_URI names another (the same rule as training).
export MLFLOW_TRACKING_URI="${MLFLOW_TRACKING_URI:-sqlite:///$PROJECT_ROOT/logs/mlruns/mlflow.db}"

PYTHON="$(command -v python || command -v python3 || true)"
# `mlflow models serve --env-manager local` execs `uvicorn` from PATH (exit 127 without it).
if [[ -z "$PYTHON" ]] || ! command -v uvicorn >/dev/null || ! "$PYTHON" -c \
    'import importlib.util, sys; sys.exit(importlib.util.find_spec("mlflow") is None)' 2>/dev/null
then
    fail "MLflow (and its uvicorn) is not in the active Python environment.
  Install the project once:   cd $PROJECT_ROOT && poetry install
  then serve with:            poetry run bash scripts/serve_model.sh ${SELECTION}"
fi
if [[ "$MLFLOW_TRACKING_URI" == sqlite:///* && ! -f "${MLFLOW_TRACKING_URI#sqlite:///}" ]]; then
    fail "no MLflow store at ${MLFLOW_TRACKING_URI#sqlite:///} yet: run training first"
fi

# Resolve the run before starting the server, so a wrong id fails in seconds with a list.
MODEL_URI="$(cd "$PROJECT_ROOT" && "$PYTHON" - "$EXPERIMENT" "$SELECTION" "$PORT" <<'PY'
import socket
import sys

from src.utils.commands.model_loading import RunNotFoundError, model_uri

experiment, selection, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    uri = model_uri(experiment, selection)
except RunNotFoundError as error:
    print(f"serve_model.sh: error: {error}", file=sys.stderr)
    sys.exit(1)
with socket.socket() as probe:
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(("127.0.0.1", port))
    except OSError:
        print(f"serve_model.sh: error: port {port} is already in use; pick another: --port "
              f"{port + 1}", file=sys.stderr)
        sys.exit(1)
print(uri)
PY
)"

echo "Serving $MODEL_URI on http://127.0.0.1:$PORT (POST /invocations, GET /ping; Ctrl-C stops)" >&2
cd "$PROJECT_ROOT"
exec "$PYTHON" -m mlflow models serve -m "$MODEL_URI" --env-manager local \
    -h 127.0.0.1 -p "$PORT" "${EXTRA[@]+"${EXTRA[@]}"}"
