"""Open Optuna Dashboard on this project's sweeps, from any directory: --study NAME checks it
exists and prints only its link; --storage URL (default logs/optuna.db) is another
hydra.sweeper.storage. Other options go to `optuna-dashboard`."""

import re
import sys
from importlib.metadata import entry_points
from pathlib import Path

from src.utils.commands.servers import common
from src.utils.paths import LOGS_DIR
from src.utils.tracking.store.redaction import redact_url_credentials

SWEEP_HINT = (
    "Run a sweep first: poetry run python src/model/model01/train.py -m "
    "'learning_rate=interval(0.001,0.002)'"
)
# Optuna's own tables (the same in SQLite, PostgreSQL and MySQL): id, name, trial count.
STUDIES = (
    "SELECT s.study_id, s.study_name, COUNT(t.trial_id) FROM studies s LEFT JOIN trials t "
    "ON t.study_id = s.study_id GROUP BY s.study_id, s.study_name ORDER BY s.study_id"
)


def read_studies(url: str) -> tuple[str, list[tuple[int, str, int]]]:
    """The URL to serve (SQLite: made absolute) and its studies, read as plain SQL: Optuna's
    storage would create a missing file and write its version into a database."""
    import sqlalchemy

    db = None
    if url.startswith("sqlite:"):
        path, _, query = url.removeprefix("sqlite:///").partition("?")
        if not url.startswith("sqlite:///") or not path:
            raise common.CommandError(f"--storage {url} is not a SQLite file URL (sqlite:////...)")
        db = Path(path).resolve()
        if not db.is_file():
            raise common.CommandError(f"no Optuna study storage at {db} yet.\n{SWEEP_HINT}")
        url = f"sqlite:///{db}" + (f"?{query}" if query else "")
    password = None
    try:
        engine = sqlalchemy.create_engine(url)
        password = engine.url.password
        with engine.connect() as connection:
            has_studies = sqlalchemy.inspect(connection).has_table("studies")
            studies = connection.execute(sqlalchemy.text(STUDIES)).all() if has_studies else []
        engine.dispose()
    except Exception as error:  # noqa: BLE001 - driver, network, login, schema: say which
        detail = (str(error).strip() or type(error).__name__).splitlines()[0]
        detail = detail.replace(str(password), "***") if password else detail
        message = f"cannot read the Optuna studies in {url}: {detail}"
        raise common.CommandError(redact_url_credentials(message)) from None
    if db is not None and not has_studies:
        raise common.CommandError(
            f"{db} is not an Optuna study storage (no such table: studies).\n{SWEEP_HINT}"
        )
    return url, [tuple(row) for row in studies]


def serve(argv: list[str]) -> None:
    options = common.parser(__doc__, port=8080)
    options.add_argument("--study", default="")
    options.add_argument("--storage", default=f"sqlite:///{LOGS_DIR / 'optuna.db'}")
    args, extra = options.parse_known_args(argv)
    common.require("optuna_dashboard", "Optuna Dashboard", "optuna_dashboard.sh")
    if not re.match(r"^[a-z][a-z0-9+]*://", args.storage):
        raise common.CommandError(
            "--storage must be a database URL such as sqlite:////abs/path/optuna.db or "
            f"postgresql+psycopg://user@host/db, got '{redact_url_credentials(args.storage)}'"
        )
    url, studies = read_studies(args.storage)
    shown = redact_url_credentials(url)
    if not studies:
        raise common.CommandError(f"no study in {shown} yet.\n{SWEEP_HINT}")
    if args.study not in ("", *(name for _, name, _ in studies)):
        listed = "".join(f"\n  {name} ({n} trials)" for _, name, n in studies)
        message = f"no study named '{args.study}' in {shown}. Studies there:{listed}"
        raise common.CommandError(message)
    base = common.listen(args.host, args.port, "the dashboard", "read, rename and delete studies")
    common.say(f"Optuna Dashboard: {base}  (Ctrl-C stops it)\n  storage: {shown}")
    for study_id, name, n_trials in studies:
        if args.study in ("", name):
            common.say(f"  {name} ({n_trials} trials): {base}/dashboard/studies/{study_id}")
    # wsgiref: "auto" picks MLflow's gunicorn, whose releases >= 25.1 share one ~/.gunicorn socket.
    (dashboard,) = entry_points(group="console_scripts", name="optuna-dashboard")
    sys.argv = ["optuna-dashboard", url, "--host", args.host, "--port", str(args.port)]
    sys.argv += ["--server", "wsgiref", *extra]  # the user's options come last and win
    try:
        sys.exit(dashboard.load()())
    except KeyboardInterrupt:  # Ctrl-C is how it is meant to stop: a status, no traceback
        sys.exit(130)


if __name__ == "__main__":
    common.main(serve)
