#!/usr/bin/env bash
# Open the MLflow UI on this project's store, from any directory.
#
#   bash scripts/mlflow_ui.sh                      # http://127.0.0.1:5000
#   bash scripts/mlflow_ui.sh --port 5001          # another port
#   bash scripts/mlflow_ui.sh --host 0.0.0.0       # reachable from other machines (warns)
#   bash scripts/mlflow_ui.sh --workers 2 ...      # anything else goes to `mlflow server`
#
# Store: sqlite:///<project>/logs/mlruns/mlflow.db with artifacts in logs/mlruns/artifacts,
# the same store training writes to. If MLFLOW_TRACKING_URI names a database
# (sqlite:, postgresql:, mysql:...) the UI opens that one instead, as training would write
# there; if it names a tracking server (http://...), that server already has a UI, so this
# script only prints its address.
#
# Run it inside the project's environment: `poetry run bash scripts/mlflow_ui.sh`.
set -euo pipefail

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STORE_DIR="$PROJECT_ROOT/logs/mlruns"
HOST="127.0.0.1"
PORT="5000"
EXTRA=()

usage() { sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
fail() { echo "mlflow_ui.sh: error: $*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --port | -p) [[ $# -ge 2 ]] || fail "$1 needs a value"; PORT="$2"; shift 2 ;;
        --port=*) PORT="${1#*=}"; shift ;;
        --host) [[ $# -ge 2 ]] || fail "$1 needs a value"; HOST="$2"; shift 2 ;;
        --host=*) HOST="${1#*=}"; shift ;;
        --help) usage; exit 0 ;;
        *) EXTRA+=("$1"); shift ;;
    esac
done
[[ "$PORT" =~ ^[0-9]+$ ]] || fail "--port must be a number, got '$PORT'"

# Off unless asked for: the project runs offline and an experiment log should not phone
# home (same default as src/utils/tracking/store/mlflow_store.py).
export MLFLOW_DISABLE_TELEMETRY="${MLFLOW_DISABLE_TELEMETRY:-true}"
# The job runner serves GenAI features (judges, prompt optimisation) and costs seconds of
# startup on a small machine; set MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true to get it back.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"

PYTHON="$(command -v python || command -v python3 || true)"
if [[ -z "$PYTHON" ]] || ! "$PYTHON" -c \
    'import importlib.util, sys; sys.exit(importlib.util.find_spec("mlflow") is None)' 2>/dev/null
then
    fail "MLflow is not installed in the active Python environment (${PYTHON:-no python on PATH}).
  Install the project once:   cd $PROJECT_ROOT && poetry install
  then start the UI with:     poetry run bash scripts/mlflow_ui.sh"
fi

# Checks and URLs in one stdlib-only Python call (no MLflow import: that costs seconds).
# It prints the `mlflow server` security options to add, one per line, on stdout.
SECURITY_OPTIONS="$("$PYTHON" - "$STORE_DIR" "$HOST" "$PORT" "${EXTRA[@]+"${EXTRA[@]}"}" <<'PY'
import json
import os
import socket
import sqlite3
import sys
import urllib.parse
from pathlib import Path

store_dir, host, port, extra = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4:]
say = lambda text: print(text, file=sys.stderr)  # noqa: E731 - stdout carries the options
env_uri = os.environ.get("MLFLOW_TRACKING_URI", "")

if env_uri.startswith(("http://", "https://", "databricks")):
    say(f"MLFLOW_TRACKING_URI={env_uri} is a tracking server: open it in a browser, it has")
    say("its own UI. Unset MLFLOW_TRACKING_URI to browse this project's logs/mlruns instead.")
    sys.exit(3)

db = store_dir / "mlflow.db"
if env_uri.startswith("sqlite:///"):
    db = Path(env_uri[len("sqlite:///"):])
if not env_uri or env_uri.startswith("sqlite:"):
    if not db.is_file():
        say(f"mlflow_ui.sh: error: no MLflow store at {db} yet.")
        say("Run training first, e.g.: poetry run python src/model/model01/train.py")
        sys.exit(1)

bind_host = "" if host in ("0.0.0.0", "::") else host
with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
    # uvicorn binds with SO_REUSEADDR too, so only a live listener counts as "in use".
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((bind_host, port))
    except OSError as error:
        say(f"mlflow_ui.sh: error: port {port} on {host} is already in use ({error.strerror}).")
        say(f"Another MLflow UI may be running there; pick a free port: --port {port + 1}")
        sys.exit(1)

loopback = host in ("127.0.0.1", "localhost", "::1")
names = [host]
if not loopback:
    hostname = socket.gethostname()
    names = sorted({hostname, socket.getfqdn(), *([] if bind_host == "" else [host])})
    try:
        names += sorted({info[4][0] for info in socket.getaddrinfo(hostname, None, socket.AF_INET)})
    except OSError:
        pass
    say(f"WARNING: --host {host} serves the UI to every machine that can reach this one on")
    say(f"port {port}. MLflow has no login here: anyone who can connect can read and delete")
    say("runs. Use it on a trusted network only, or tunnel instead: ssh -L 5000:127.0.0.1:5000")
    # Explicit lists instead of MLflow's defaults (localhost + private IPs), unless given.
    if not any(a.startswith("--allowed-hosts") for a in extra):
        hosts = ["localhost", f"localhost:{port}", "127.0.0.1", f"127.0.0.1:{port}"]
        hosts += [h for n in names for h in (n, f"{n}:{port}")]
        print(f"--allowed-hosts={','.join(dict.fromkeys(hosts))}")
    if not any(a.startswith("--cors-allowed-origins") for a in extra):
        origins = [f"http://{n}:{port}" for n in ["localhost", "127.0.0.1", *names]]
        print(f"--cors-allowed-origins={','.join(dict.fromkeys(origins))}")

# What each experiment's link opens: MLflow's own "shared view" of the run table (an
# experiment tag, as the UI's Share button saves it, read back through `viewStateShareKey`),
# sorted by the optimized metric, with the key metrics and the searched parameters as
# columns. The UI also reads orderByKey/orderByAsc from the URL, but columns only from a
# saved or shared view. Rewritten at every start, so newly searched parameters show up.
VIEW_KEY = "best-runs"
MINIMIZED_WORDS = ("loss", "error", "mse", "mae")  # as in src/utils/project_paths.py


def run_table_view(connection: sqlite3.Connection, experiment_id: int) -> dict:
    runs = (
        "JOIN runs r ON r.run_uuid = x.run_uuid "
        "WHERE r.experiment_id = ? AND r.lifecycle_stage = 'active'"
    )
    (metric,) = connection.execute(
        f"SELECT x.value FROM params x {runs} AND x.key = 'optimized_metric' "
        "ORDER BY r.start_time DESC LIMIT 1",
        (experiment_id,),
    ).fetchone() or ("val/acc",)
    logged = [k for (k,) in connection.execute(
        f"SELECT DISTINCT x.key FROM latest_metrics x {runs} ORDER BY x.key", (experiment_id,)
    )]
    # Validation and test scores, and the epoch mean of the training loss (its per-step
    # value's last point says little); not the sweeps' bookkeeping (best_value, n_trials).
    metrics = [metric] + [
        k for k in logged if k.startswith(("val/", "test/")) or k == "train/loss_epoch"
    ]
    # A sweep's parent run records its search space's best point as best.<name>.
    searched = [k.removeprefix("best.") for (k,) in connection.execute(
        f"SELECT DISTINCT x.key FROM params x {runs} AND x.key LIKE 'best.%' ORDER BY x.key",
        (experiment_id,),
    )]
    return {
        "orderByKey": f"metrics.`{metric}`",
        "orderByAsc": any(word in metric.lower() for word in MINIMIZED_WORDS),
        "selectedColumns": [f"metrics.`{k}`" for k in dict.fromkeys(metrics)]
        + [f"params.`{k}`" for k in searched],
    }


base = f"http://{names[0] if not loopback else host}:{port}"
say(f"MLflow UI: {base}  (Ctrl-C stops it)")
say(f"  experiments: {base}/#/experiments")
if db.is_file() and (not env_uri or env_uri.startswith("sqlite:")):
    # The run table, not MLflow 3's GenAI "Overview" that an experiment link opens by default.
    query = (
        "SELECT e.experiment_id, e.name, COUNT(r.run_uuid) FROM experiments e "
        "LEFT JOIN runs r ON r.experiment_id = e.experiment_id AND r.lifecycle_stage = 'active' "
        "WHERE e.lifecycle_stage = 'active' GROUP BY e.experiment_id, e.name ORDER BY e.name"
    )
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
            rows = [row for row in connection.execute(query).fetchall() if row[2]]
    except sqlite3.Error:
        rows = []
    views = {}
    try:
        with sqlite3.connect(f"file:{db}?mode=rw", uri=True, timeout=10) as connection:
            for experiment_id, _, _ in rows:
                view = run_table_view(connection, experiment_id)
                connection.execute(
                    "INSERT OR REPLACE INTO experiment_tags (key, value, experiment_id) "
                    "VALUES (?, ?, ?)",
                    (f"mlflow.sharedViewState.{VIEW_KEY}", json.dumps(view), experiment_id),
                )
                views[experiment_id] = f"&viewStateShareKey={VIEW_KEY}"
    except sqlite3.Error as error:
        # A store this user may only read: the links still sort, but cannot choose columns.
        say(f"  (run-table columns not saved: {error}; the links only sort the table)")
        views = {}
    # `workflowType=machine_learning` opens the "Model training" view (runs, models, registry)
    # instead of MLflow 3.17's default GenAI view (traces, judges, prompts).
    for experiment_id, name, n_runs in rows:
        if experiment_id not in views:
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
                    view = run_table_view(connection, experiment_id)
                ascending = str(view["orderByAsc"]).lower()
                sort = {"orderByKey": view["orderByKey"], "orderByAsc": ascending}
                views[experiment_id] = "&" + urllib.parse.urlencode(sort)
            except sqlite3.Error:
                views[experiment_id] = ""
        url = f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
        say(f"  {name} ({n_runs} runs): {url}{views[experiment_id]}")
PY
)" || { status=$?; [[ $status -eq 3 ]] && exit 0; exit "$status"; }

BACKEND_URI="${MLFLOW_TRACKING_URI:-sqlite:///$STORE_DIR/mlflow.db}"
SECURITY=()
while IFS= read -r option; do
    [[ -n "$option" ]] && SECURITY+=("$option")
done <<<"$SECURITY_OPTIONS"

# One worker: enough for one user, and it answers in seconds where MLflow's default four
# take ~18 s to start on two cores. Options given on the command line come last and win.
cd "$PROJECT_ROOT"
exec "$PYTHON" -m mlflow server \
    --backend-store-uri "$BACKEND_URI" \
    --default-artifact-root "file://$STORE_DIR/artifacts" \
    --host "$HOST" --port "$PORT" --workers 1 \
    "${SECURITY[@]+"${SECURITY[@]}"}" "${EXTRA[@]+"${EXTRA[@]}"}"
