"""Start an MLflow tracking server for a team: runs in a database, artifacts served through it.
Each setting from the command line, else the environment, else .env (see .env.example). --auth
(on by itself beyond loopback, unless --no-auth): MLflow's login, admin from .env, users with
scripts/mlflow_users.sh. Passwords never go on a command line (`ps` shows those)."""

import argparse
import importlib.util
import os
import secrets
from pathlib import Path

from src.utils.commands.servers import common
from src.utils.paths import LOGS_DIR, PROJECT_ROOT
from src.utils.tracking.store.redaction import redact_url_credentials

STORE_DIR = LOGS_DIR / "mlflow_server"  # git-ignored, as all of logs/
PERMISSIONS = ("READ", "USE", "EDIT", "MANAGE", "NO_PERMISSIONS")


def backend_store(given: str | None) -> str:
    """The database URI, with its driver checked and a SQLite file's folder made."""
    env = os.environ.get
    backend = given or env("MLFLOW_BACKEND_STORE_URI")
    if not backend and env("POSTGRES_USER"):
        if not env("POSTGRES_PASSWORD"):
            raise common.CommandError("POSTGRES_USER is set but POSTGRES_PASSWORD is not (.env)")
        backend = (
            f"postgresql+psycopg://{env('POSTGRES_USER')}:{env('POSTGRES_PASSWORD')}@"
            f"{env('POSTGRES_HOST', '127.0.0.1')}:{env('POSTGRES_PORT', '5432')}/"
            f"{env('POSTGRES_DB', 'mlflow')}"
        )
    backend = backend or f"sqlite:///{STORE_DIR / 'mlflow.db'}"
    shown = redact_url_credentials(backend)
    scheme = backend.split(":", 1)[0].lower()
    if scheme.partition("+")[0] not in ("postgresql", "mysql", "sqlite", "mssql"):
        raise common.CommandError(
            f"--backend-store-uri {shown}: use postgresql+psycopg://, mysql+pymysql://, or sqlite:///"
        )
    module = {"postgresql": "psycopg", "mysql": "MySQLdb"}.get(scheme, scheme.partition("+")[2])
    if module and not importlib.util.find_spec(module):  # the driver SQLAlchemy will import
        raise common.CommandError(
            f"the backend store {shown} needs the Python module {module!r}, which is not "
            "installed. PostgreSQL: use postgresql+psycopg://... (psycopg is a project "
            "dependency). MySQL: poetry add pymysql and use mysql+pymysql://..."
        )
    if backend.startswith("sqlite:///") and ":memory:" not in backend:
        (PROJECT_ROOT / backend[10:]).parent.mkdir(parents=True, exist_ok=True)
    return backend


def artifact_destination(given: str | None) -> str:
    """A URL (s3:// checked for its settings), or a local folder made absolute and created."""
    artifacts = given or os.environ.get("MLFLOW_ARTIFACTS_DESTINATION", "")
    if artifacts.startswith("s3://"):
        needs = [k for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if k not in os.environ]
        needs += ["boto3 (poetry add boto3)"] * (importlib.util.find_spec("boto3") is None)
        if needs:
            raise common.CommandError(f"an s3:// artifact destination needs {' and '.join(needs)}")
    if "://" in artifacts:
        return artifacts
    folder = (PROJECT_ROOT / (artifacts or STORE_DIR / "artifacts")).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)


def private_file(path: Path, text: str | None = None) -> str:
    """`path`'s text, written first (when given, or missing) readable by this user only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if text is not None or not path.is_file():
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(text or secrets.token_hex(32))  # none given: a new random key
    return path.read_text()


def set_up_login(backend: str) -> str:
    """MLflow's basic-auth app, configured through the environment and a private INI file:
    the admin from .env, the users' database beside the runs', a Flask key made once."""
    common.require("flask_wtf", "MLflow's login (mlflow[auth])", "mlflow_server.sh --auth")
    env = os.environ
    admin = env["MLFLOW_AUTH_ADMIN_USERNAME"] = env.get("MLFLOW_AUTH_ADMIN_USERNAME") or "admin"
    password = env.get("MLFLOW_AUTH_ADMIN_PASSWORD", "")
    problems = {"": "is not set", "password1234": "is MLflow's published default"}
    problem = problems.get(password, "is shorter than 12 characters" * (len(password) < 12))
    permission = env.setdefault("MLFLOW_AUTH_DEFAULT_PERMISSION", "READ")
    if problem:
        raise common.CommandError(
            f"the login's admin '{admin}': MLFLOW_AUTH_ADMIN_PASSWORD {problem}. Set it in .env "
            "to 12 or more characters, or serve without a login (--no-auth) on a trusted network"
        )
    if permission not in PERMISSIONS:
        message = f"MLFLOW_AUTH_DEFAULT_PERMISSION={permission}: not one of {PERMISSIONS}"
        raise common.CommandError(message)
    users = backend  # PostgreSQL and MySQL: the same database, tables of their own
    if backend.startswith("sqlite:///"):
        users = f"sqlite:///{(PROJECT_ROOT / backend[10:]).parent / 'basic_auth.db'}"
    config = f"[mlflow]\ndefault_permission = {permission}\ndatabase_uri = {users}\n"
    private_file(STORE_DIR / "basic_auth.ini", config.replace("%", "%%"))  # configparser
    env["MLFLOW_AUTH_CONFIG_PATH"] = str(STORE_DIR / "basic_auth.ini")
    if not env.get("MLFLOW_FLASK_SERVER_SECRET_KEY"):  # signs the UI's forms (CSRF)
        env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = private_file(STORE_DIR / "flask_secret_key")
    return f"MLflow's, admin '{admin}', new users may {permission}"


def serve(argv: list[str]) -> None:
    options = common.parser(__doc__, port=5000)
    options.add_argument("--backend-store-uri")
    options.add_argument("--artifacts-destination")
    options.add_argument("--workers", "-w", type=common.whole_number(1, 1000))
    options.add_argument("--env-file", type=Path)
    options.add_argument("--auth", action=argparse.BooleanOptionalAction)
    args, _ = options.parse_known_args(argv)
    common.require("mlflow", "MLflow", "mlflow_server.sh")
    common.load_env_file(args.env_file)
    env = os.environ.get
    options.set_defaults(host=env("MLFLOW_SERVER_HOST", "127.0.0.1"))
    options.set_defaults(port=env("MLFLOW_SERVER_PORT", "5000"))
    options.set_defaults(workers=env("MLFLOW_SERVER_WORKERS", "2"))
    args, extra = options.parse_known_args(argv)  # again: the environment's and .env's defaults
    backend = backend_store(args.backend_store_uri)
    artifacts = artifact_destination(args.artifacts_destination)
    public = args.host not in common.LOOPBACK
    login = set_up_login(backend) if args.auth or (public and args.auth is None) else None
    risk = "" if login else "read and delete every run"
    base = common.listen(args.host, args.port, "the server", risk)
    common.say(
        f"MLflow tracking server: {base}  (Ctrl-C stops it)\n"
        f"  backend store: {redact_url_credentials(backend)}\n"
        f"  artifacts:     {artifacts} (served through the server)\n"
        f"  login:         {login or 'none'}\n"
        f"  clients:       export MLFLOW_TRACKING_URI={base}" + " (a login in .env)" * bool(login)
    )
    os.environ["MLFLOW_BACKEND_STORE_URI"] = backend
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # a client's setting; the server has its store
    common.exec_python(
        "-m", "mlflow", "server", "--serve-artifacts", "--artifacts-destination", artifacts,
        "--host", args.host, "--port", str(args.port), "--workers", str(args.workers),
        *(["--app-name", "basic-auth"] if login else []), *extra,
    )  # fmt: skip


if __name__ == "__main__":
    common.main(serve)
