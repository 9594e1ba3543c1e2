#!/usr/bin/env bash
# Start an MLflow tracking server for a team: a database for runs, artifacts served through
# the server, so clients need only its URL (MLFLOW_TRACKING_URI=http://<host>:<port>).
#
#   poetry run bash scripts/mlflow_server.sh                        # settings from .env
#   poetry run bash scripts/mlflow_server.sh --host 0.0.0.0 --port 5000 --workers 4
#   poetry run bash scripts/mlflow_server.sh --backend-store-uri sqlite:///logs/server.db \
#       --artifacts-destination /shared/mlflow-artifacts
#   poetry run bash scripts/mlflow_server.sh --env-file team.env ... # more `mlflow server` options
#
# Settings, first found wins: the command line, the environment, the project's .env file
# (git-ignored; copy .env.example). Credentials belong in .env, never in files in git.
#   backend store  --backend-store-uri | MLFLOW_BACKEND_STORE_URI | built from POSTGRES_USER,
#                  POSTGRES_PASSWORD, POSTGRES_HOST, POSTGRES_PORT, POSTGRES_DB | SQLite in
#                  logs/mlflow_server/mlflow.db
#   artifacts      --artifacts-destination | MLFLOW_ARTIFACTS_DESTINATION | logs/mlflow_server/
#                  artifacts; s3://bucket/path needs MLFLOW_S3_ENDPOINT_URL (MinIO),
#                  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and boto3
#   host, port     --host | MLFLOW_SERVER_HOST (127.0.0.1), --port | MLFLOW_SERVER_PORT (5000)
#   workers        --workers | MLFLOW_SERVER_WORKERS (2)
# The database password never appears on the command line (`ps` shows it): the URI is
# handed to MLflow through MLFLOW_BACKEND_STORE_URI.
set -euo pipefail

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_FILE="$PROJECT_ROOT/.env"
CLI_BACKEND=""
CLI_ARTIFACTS=""
CLI_HOST=""
CLI_PORT=""
CLI_WORKERS=""
EXTRA=()

usage() { sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
fail() { echo "mlflow_server.sh: error: $*" >&2; exit 1; }
value_of() { [[ $# -ge 2 && -n "$2" ]] || fail "$1 needs a value"; printf '%s' "$2"; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --backend-store-uri) CLI_BACKEND="$(value_of "$@")"; shift 2 ;;
        --backend-store-uri=*) CLI_BACKEND="${1#*=}"; shift ;;
        --artifacts-destination) CLI_ARTIFACTS="$(value_of "$@")"; shift 2 ;;
        --artifacts-destination=*) CLI_ARTIFACTS="${1#*=}"; shift ;;
        --host | -h) CLI_HOST="$(value_of "$@")"; shift 2 ;;
        --host=*) CLI_HOST="${1#*=}"; shift ;;
        --port | -p) CLI_PORT="$(value_of "$@")"; shift 2 ;;
        --port=*) CLI_PORT="${1#*=}"; shift ;;
        --workers | -w) CLI_WORKERS="$(value_of "$@")"; shift 2 ;;
        --workers=*) CLI_WORKERS="${1#*=}"; shift ;;
        --env-file) ENV_FILE="$(value_of "$@")"; shift 2 ;;
        --env-file=*) ENV_FILE="${1#*=}"; shift ;;
        --help) usage; exit 0 ;;
        *) EXTRA+=("$1"); shift ;;
    esac
done

# KEY=VALUE lines of the .env file (docker compose's format: no shell expansion, optional
# quotes); variables already set in the environment win, as with docker compose.
if [[ -f "$ENV_FILE" ]]; then
    while IFS= read -r line || [[ -n "$line" ]]; do
        line="${line%$'\r'}"
        [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
        line="${line#export }"
        [[ "$line" =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] \
            || fail "$ENV_FILE: cannot read the line '${line%%=*}=...' (want KEY=VALUE)"
        key="${BASH_REMATCH[1]}"
        value="${BASH_REMATCH[2]}"
        if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then
            value="${BASH_REMATCH[1]}"
        fi
        [[ -n "${!key+set}" ]] || export "$key=$value"
    done <"$ENV_FILE"
elif [[ "$ENV_FILE" != "$PROJECT_ROOT/.env" ]]; then
    fail "no env file at $ENV_FILE"
fi

HOST="${CLI_HOST:-${MLFLOW_SERVER_HOST:-127.0.0.1}}"
PORT="${CLI_PORT:-${MLFLOW_SERVER_PORT:-5000}}"
WORKERS="${CLI_WORKERS:-${MLFLOW_SERVER_WORKERS:-2}}"
[[ "$PORT" =~ ^[0-9]+$ ]] || fail "--port must be a number, got '$PORT'"
[[ "$WORKERS" =~ ^[0-9]+$ && "$WORKERS" -ge 1 ]] || fail "--workers must be 1 or more, got '$WORKERS'"

STORE_DIR="$PROJECT_ROOT/logs/mlflow_server"
BACKEND="${CLI_BACKEND:-${MLFLOW_BACKEND_STORE_URI:-}}"
if [[ -z "$BACKEND" && -n "${POSTGRES_USER:-}" ]]; then
    [[ -n "${POSTGRES_PASSWORD:-}" ]] || fail "POSTGRES_USER is set but POSTGRES_PASSWORD is not (.env)"
    BACKEND="postgresql+psycopg://${POSTGRES_USER}:${POSTGRES_PASSWORD}@${POSTGRES_HOST:-127.0.0.1}:${POSTGRES_PORT:-5432}/${POSTGRES_DB:-mlflow}"
fi
BACKEND="${BACKEND:-sqlite:///$STORE_DIR/mlflow.db}"
ARTIFACTS="${CLI_ARTIFACTS:-${MLFLOW_ARTIFACTS_DESTINATION:-$STORE_DIR/artifacts}}"

PYTHON="$(command -v python || command -v python3 || true)"
if [[ -z "$PYTHON" ]] || ! "$PYTHON" -c \
    'import importlib.util, sys; sys.exit(importlib.util.find_spec("mlflow") is None)' 2>/dev/null
then
    fail "MLflow is not installed in the active Python environment (${PYTHON:-no python on PATH}).
  Install the project once:   cd $PROJECT_ROOT && poetry install
  then start the server with: poetry run bash scripts/mlflow_server.sh"
fi

# Checks in one stdlib-only Python call: the database driver, S3 settings, a free port.
# It prints the artifact destination to use (a local folder made absolute) on stdout.
ARTIFACTS="$("$PYTHON" - "$BACKEND" "$ARTIFACTS" "$HOST" "$PORT" "$PROJECT_ROOT" <<'PY'
import importlib.util
import os
import re
import socket
import sys
from pathlib import Path

backend, artifacts, host, port, root = sys.argv[1:6]
port = int(port)


def fail(message: str) -> None:
    print(f"mlflow_server.sh: error: {message}", file=sys.stderr)
    sys.exit(1)


def shown(uri: str) -> str:
    return re.sub(r"(://[^:/@]+):[^@/]+@", r"\1:***@", uri)


scheme = backend.split(":", 1)[0].lower()
dialect, _, driver = scheme.partition("+")
drivers = {
    "postgresql": {"psycopg": "psycopg", "psycopg2": "psycopg2", "": "psycopg"},
    "mysql": {"pymysql": "pymysql", "mysqldb": "MySQLdb", "": "MySQLdb"},
}
if dialect in drivers:
    module = drivers[dialect].get(driver, driver)
    if importlib.util.find_spec(module) is None:
        fail(
            f"the backend store {shown(backend)} needs the Python module {module!r}, which is "
            "not installed. PostgreSQL: use postgresql+psycopg://... (psycopg is a project "
            "dependency). MySQL: poetry add pymysql and use mysql+pymysql://..."
        )
elif dialect == "sqlite":
    path = backend[len("sqlite:///"):]
    if path and not path.startswith(":"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
elif dialect not in ("mssql",):
    fail(f"--backend-store-uri {shown(backend)}: use postgresql+psycopg://, mysql+pymysql://, or sqlite:///")

if artifacts.startswith("s3://"):
    if importlib.util.find_spec("boto3") is None:
        fail("an s3:// artifact destination needs boto3: poetry add boto3")
    missing = [k for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not os.environ.get(k)]
    if missing:
        fail(f"an s3:// artifact destination needs {' and '.join(missing)} (.env)")
    if not os.environ.get("MLFLOW_S3_ENDPOINT_URL"):
        print("Note: MLFLOW_S3_ENDPOINT_URL is not set, so s3:// means Amazon S3 (set it "
              "for MinIO, e.g. http://127.0.0.1:9000)", file=sys.stderr)
elif "://" not in artifacts:
    folder = Path(artifacts)
    folder = folder if folder.is_absolute() else Path(root) / folder
    folder.mkdir(parents=True, exist_ok=True)
    artifacts = str(folder.resolve())

bind_host = "" if host in ("0.0.0.0", "::") else host
with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((bind_host, port))
    except OSError as error:
        fail(f"port {port} on {host} is already in use ({error.strerror}); pick another: --port {port + 1}")

loopback = host in ("127.0.0.1", "localhost", "::1")
name = host if loopback else socket.getfqdn()
print(f"MLflow tracking server: http://{name}:{port}  (Ctrl-C stops it)", file=sys.stderr)
print(f"  backend store: {shown(backend)}", file=sys.stderr)
print(f"  artifacts:     {artifacts} (served through the server)", file=sys.stderr)
print(f"  clients:       export MLFLOW_TRACKING_URI=http://{name}:{port}", file=sys.stderr)
if not loopback:
    print(f"WARNING: --host {host} serves every machine that can reach this one on port "
          f"{port}, with no login. Use a trusted network, or put a proxy with "
          "authentication in front.", file=sys.stderr)
print(artifacts)
PY
)"

# The URI goes through the environment (MLflow reads MLFLOW_BACKEND_STORE_URI), so its
# password does not show in the process list.
export MLFLOW_BACKEND_STORE_URI="$BACKEND"
export MLFLOW_DISABLE_TELEMETRY="${MLFLOW_DISABLE_TELEMETRY:-true}"
# The job runner serves GenAI features (judges, prompt optimisation) and costs seconds of
# startup; set MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true to get it back.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
unset MLFLOW_TRACKING_URI # the server's own store is the backend above, not a client URI

cd "$PROJECT_ROOT"
exec "$PYTHON" -m mlflow server \
    --serve-artifacts --artifacts-destination "$ARTIFACTS" \
    --host "$HOST" --port "$PORT" --workers "$WORKERS" \
    "${EXTRA[@]+"${EXTRA[@]}"}"
