#!/usr/bin/env bash
# Open Optuna Dashboard on this project's sweeps (Optuna studies), from any directory.
#
#   bash scripts/optuna_dashboard.sh                          # http://127.0.0.1:8080
#   bash scripts/optuna_dashboard.sh --port 8081              # another port
#   bash scripts/optuna_dashboard.sh --study <study name>     # check it exists, print its link
#   bash scripts/optuna_dashboard.sh --storage "$OPTUNA_DB"   # the study database of the sweep
#   bash scripts/optuna_dashboard.sh --host 0.0.0.0           # reachable from other machines (warns)
#
# Storage: sqlite:///<project>/logs/optuna.db, where sweeps keep their studies by default
# (hydra.sweeper.storage). A sweep given another storage (hydra.sweeper.storage=postgresql...)
# is shown with the same URL in --storage. Anything else goes to `optuna-dashboard`.
#
# Run it inside the project's environment: `poetry run bash scripts/optuna_dashboard.sh`.
set -euo pipefail

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STORAGE="sqlite:///$PROJECT_ROOT/logs/optuna.db"
HOST="127.0.0.1"
PORT="8080"
STUDY=""
EXTRA=()

usage() { sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
fail() { echo "optuna_dashboard.sh: error: $*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --port | -p) [[ $# -ge 2 ]] || fail "$1 needs a value"; PORT="$2"; shift 2 ;;
        --port=*) PORT="${1#*=}"; shift ;;
        --host) [[ $# -ge 2 ]] || fail "$1 needs a value"; HOST="$2"; shift 2 ;;
        --host=*) HOST="${1#*=}"; shift ;;
        --study) [[ $# -ge 2 ]] || fail "$1 needs a value"; STUDY="$2"; shift 2 ;;
        --study=*) STUDY="${1#*=}"; shift ;;
        --storage) [[ $# -ge 2 ]] || fail "$1 needs a value"; STORAGE="$2"; shift 2 ;;
        --storage=*) STORAGE="${1#*=}"; shift ;;
        -h | --help) usage; exit 0 ;;
        *) EXTRA+=("$1"); shift ;;
    esac
done
[[ "$PORT" =~ ^[0-9]+$ ]] || fail "--port must be a number, got '$PORT'"

PYTHON="$(command -v python || command -v python3 || true)"
if [[ -z "$PYTHON" ]] || ! "$PYTHON" -c \
    'import importlib.util, sys; sys.exit(importlib.util.find_spec("optuna_dashboard") is None)' \
    2>/dev/null
then
    fail "Optuna Dashboard is not installed in the active Python environment (${PYTHON:-no python on PATH}).
  Install the project once:   cd $PROJECT_ROOT && poetry install
  then start the dashboard:   poetry run bash scripts/optuna_dashboard.sh"
fi

# Checks and links before the server starts, so a missing study or a busy port is one clear
# line instead of a traceback or an empty dashboard. Prints the storage URL to serve on
# stdout (a relative SQLite path made absolute).
SERVE_URL="$("$PYTHON" - "$STORAGE" "$HOST" "$PORT" "$STUDY" <<'PY'
import re
import socket
import sqlite3
import sys
from pathlib import Path

url, host, port, wanted = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
say = lambda text: print(text, file=sys.stderr)  # noqa: E731 - stdout carries the URL
shown = re.sub(r"(://[^:/@]+:)[^@/]*@", r"\1***@", url)  # never echo a password
SWEEP_HINT = (
    "Run a sweep first: poetry run python src/model/model01/train.py -m "
    "'learning_rate=interval(0.001,0.002)'"
)
# Optuna's own tables (the same in SQLite, PostgreSQL and MySQL): id, name, trial count.
LISTING = (
    "SELECT s.study_id, s.study_name, COUNT(t.trial_id) FROM studies s "
    "LEFT JOIN trials t ON t.study_id = s.study_id "
    "GROUP BY s.study_id, s.study_name ORDER BY s.study_id"
)


def error(text: str, *more: str) -> None:
    say(f"optuna_dashboard.sh: error: {text}")
    for line in more:
        say(line)
    sys.exit(1)


if not re.match(r"^[a-z][a-z0-9+]*://", url):
    error(f"--storage must be a database URL such as sqlite:////abs/path/optuna.db or "
          f"postgresql+psycopg://user@host/db, got '{shown}'")

if url.startswith("sqlite:"):
    # Read with the standard library, read-only: opening a missing path through Optuna or
    # SQLAlchemy would create an empty database there instead of saying it is missing.
    path_part, _, query = url[len("sqlite:///"):].partition("?")
    if not url.startswith("sqlite:///") or not path_part:
        error(f"--storage {shown} is not a SQLite file URL (sqlite:////abs/path/optuna.db)")
    db = Path(path_part).resolve()
    url = f"sqlite:///{db}" + (f"?{query}" if query else "")
    shown = url
    if not db.is_file():
        error(f"no Optuna study storage at {db} yet.", SWEEP_HINT)
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
            studies = connection.execute(LISTING).fetchall()
    except sqlite3.Error as exc:
        error(f"{db} is not an Optuna study storage ({exc}).", SWEEP_HINT)
else:
    # Plain SQL through SQLAlchemy rather than Optuna's RDBStorage, which writes its version
    # rows into a database it opens: looking must not change a shared database.
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(url)
        password = engine.url.password
        shown = engine.url.render_as_string(hide_password=True)
        with engine.connect() as connection:
            has_studies = sqlalchemy.inspect(connection).has_table("studies")
            studies = connection.execute(sqlalchemy.text(LISTING)).all() if has_studies else []
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - driver, network, login, schema: say which
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if password:
            detail = detail.replace(str(password), "***")
        error(f"cannot read the Optuna studies in {shown}: {detail}")

if not studies:
    error(f"no study in {shown} yet.", SWEEP_HINT)
if wanted and wanted not in {name for _, name, _ in studies}:
    error(
        f"no study named '{wanted}' in {shown}. Studies there:",
        *(f"  {name} ({n_trials} trials)" for _, name, n_trials in studies),
    )

bind_host = "" if host in ("0.0.0.0", "::") else host
with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
    # The server binds with SO_REUSEADDR too, so only a live listener counts as "in use".
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((bind_host, port))
    except OSError as exc:
        error(
            f"port {port} on {host} is already in use ({exc.strerror}).",
            f"Another dashboard may be running there; pick a free port: --port {port + 1}",
        )

loopback = host in ("127.0.0.1", "localhost", "::1")
base = f"http://{host if loopback or bind_host else socket.gethostname()}:{port}"
if not loopback:
    say(f"WARNING: --host {host} serves the dashboard to every machine that can reach this one")
    say(f"on port {port}. Optuna Dashboard has no login: anyone who can connect can read, rename")
    say("and delete studies. Use it on a trusted network only, or tunnel instead:")
    say(f"ssh -L {port}:127.0.0.1:{port} <this machine>")
say(f"Optuna Dashboard: {base}  (Ctrl-C stops it)")
say(f"  storage: {shown}")
for study_id, name, n_trials in studies:
    if not wanted or name == wanted:
        say(f"  {name} ({n_trials} trials): {base}/dashboard/studies/{study_id}")
print(url)
PY
)"

# The threaded wsgiref server of the standard library rather than "auto", which picks
# gunicorn whenever it is installed (MLflow brings it): gunicorn >= 25.1 opens one control
# socket for all its instances in ~/.gunicorn, and starts no faster for one user.
# Options given on the command line come last and win.
exec "$PYTHON" - "$SERVE_URL" --host "$HOST" --port "$PORT" --server wsgiref \
    "${EXTRA[@]+"${EXTRA[@]}"}" <<'PY'
import sys
from importlib.metadata import entry_points

# The `optuna-dashboard` command itself, run by this interpreter (not whichever is on PATH).
(command,) = entry_points(group="console_scripts", name="optuna-dashboard")
sys.argv[0] = "optuna-dashboard"
try:
    sys.exit(command.load()())
except KeyboardInterrupt:
    # Ctrl-C is how the dashboard is meant to stop: an exit status, not a traceback.
    sys.exit(130)
PY
