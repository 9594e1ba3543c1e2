"""One MLflow store where training, notebooks and the UI meet, and opening and closing runs in it:
$MLFLOW_TRACKING_URI when set (a team server), else <project>/logs/mlruns/{mlflow.db,artifacts/}."""

import os
from typing import Any, NoReturn

from src.utils.paths import MLRUNS_DIR, PROJECT_ROOT
from src.utils.tracking.store.sqlite_wal import use_write_ahead_log

# Seconds a tracking server gets to answer; MLflow's own client retries for minutes (a "hang").
SERVER_CHECK_TIMEOUT_S = 5.0
_READY_STORES: set[str] = set()  # SQLite stores this process has created or checked


class TrackingServerUnreachable(ConnectionError):
    """MLFLOW_TRACKING_URI points at a server that does not answer, or refuses this login."""


def _refuse(message: str) -> NoReturn:
    """Raise; while a sweep sets up, one message and exit 2 instead (Hydra shows tracebacks)."""
    from src.utils.user_errors import exit_with_message, in_multirun

    if in_multirun():
        exit_with_message(message, kind=TrackingServerUnreachable.__name__)
    raise TrackingServerUnreachable(message)


def _get(uri: str, path: str, **params: str) -> Any:
    """GET MLflow's REST `path` with the login its clients send (MLFLOW_TRACKING_USERNAME)."""
    import requests

    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    login = (user, os.environ.get("MLFLOW_TRACKING_PASSWORD", "")) if user else None
    url = f"{uri.rstrip('/')}/api/{path}"
    return requests.get(url, params, auth=login, timeout=SERVER_CHECK_TIMEOUT_S)


def check_server(uri: str, timeout: float = SERVER_CHECK_TIMEOUT_S) -> None:
    """Fail within `timeout` seconds with advice when an http(s) tracking server is down or
    refuses the login (from the environment, else the project's .env)."""
    import urllib.request

    from dotenv import dotenv_values

    for key, value in dotenv_values(PROJECT_ROOT / ".env").items():
        if key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD") and value:
            os.environ.setdefault(key, value)
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()  # noqa: S310
    except urllib.request.HTTPError:
        pass  # it answered: an auth error or a proxy's 404 is MLflow's to report
    except (urllib.request.URLError, TimeoutError, OSError) as error:
        _refuse(
            f"The MLflow tracking server at {uri} (MLFLOW_TRACKING_URI) did not answer within "
            f"{timeout:.0f} s ({getattr(error, 'reason', error)}). Start the server, or unset "
            "MLFLOW_TRACKING_URI to log into this project's logs/mlruns"
        )
    if _get(uri, "2.0/mlflow/users/current").status_code == 401:
        user = os.environ.get("MLFLOW_TRACKING_USERNAME")
        login = f"refused the login of '{user}' (wrong or changed password)" if user else ""
        _refuse(
            f"The MLflow tracking server at {uri} {login or 'asks for a login'}: set "
            "MLFLOW_TRACKING_USERNAME and _PASSWORD (environment or .env) to your account there"
        )


def _check_can_write(uri: str, name: str) -> None:
    """Stop before any run when MLflow's login lets this user only read the experiment."""
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if not uri.startswith("http") or not user:
        return
    me = _get(uri, "2.0/mlflow/users/current")
    if me.status_code != 200 or me.json()["user"]["is_admin"]:
        return  # a server without the login, or an admin
    found = _get(uri, "2.0/mlflow/experiments/get-by-name", experiment_name=name)
    if found.status_code == 404:
        return  # a new experiment: its creator may manage it
    permission = "NO_PERMISSIONS"  # 403: it may not even read the experiment
    if found.ok:
        experiment = found.json()["experiment"]["experiment_id"]
        query = {"username": user, "resource_type": "experiment", "resource_id": experiment}
        permission = _get(uri, "3.0/mlflow/users/permissions/get", **query).json()["permission"]
    if permission not in ("EDIT", "MANAGE"):
        _refuse(
            f"User '{user}' has {permission} on experiment '{name}' at {uri}; training needs "
            f"EDIT: ask the server's admin (scripts/mlflow_users.sh grant {user} EDIT "
            f"--experiment {name})"
        )


def check_can_log(configured_uri: str | None, experiment: str) -> None:
    """A sweep's first step: a tracking server that refuses this user stops it before its
    Optuna study is created (else a refused sweep would leave an empty study behind)."""
    uri = tracking_uri(configured_uri)
    if uri.startswith(("http://", "https://")):
        check_server(uri)
        _check_can_write(uri, experiment)


def default_tracking_uri() -> str:
    return f"sqlite:///{MLRUNS_DIR / 'mlflow.db'}"


def tracking_uri(configured: str | None = None) -> str:
    """The config's URI if given, else $MLFLOW_TRACKING_URI, else the project's SQLite store."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def is_local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def configure_mlflow(configured_uri: str | None = None) -> str:
    """Point MLflow (fluent API and clients) at the project's store; return the URI. Telemetry
    is off (a log should not phone home) unless the user set MLFLOW_DISABLE_TELEMETRY=false."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = tracking_uri(configured_uri)
    if uri.startswith("sqlite:"):
        MLRUNS_DIR.mkdir(parents=True, exist_ok=True)
        use_write_ahead_log()
    elif uri.startswith(("http://", "https://")):
        check_server(uri)
    import mlflow

    mlflow.set_tracking_uri(uri)
    if uri.startswith("sqlite:") and uri not in _READY_STORES:
        # Locked: parallel trials on a new project race to create tables ("duplicate column name").
        from filelock import FileLock

        with FileLock(str(MLRUNS_DIR / ".store.lock")):
            mlflow.MlflowClient(uri).search_experiments(max_results=1)  # builds the tables once
        _READY_STORES.add(uri)
    return uri


def get_or_create_experiment(client: Any, name: str) -> str:
    """The id of experiment `name`, created with its artifacts under logs/mlruns/artifacts
    (without an explicit location a local store would put them in ./mlruns of the cwd)."""
    _check_can_write(client.tracking_uri, name)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    local = is_local_store(client.tracking_uri)
    artifact_location = (MLRUNS_DIR / "artifacts" / name).as_uri() if local else None
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except Exception:  # noqa: BLE001 - another trial created it first (parallel sweep)
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def end_run(
    client: Any, run_id: str, error: BaseException | None = None, failure: str | None = None
) -> str:
    """End a run; return its status: FINISHED, KILLED when stopped (Ctrl-C, SIGTERM, sys.exit),
    FAILED when it raised or `failure` says why. The `error` tag says what stopped it."""
    failed = error is not None or failure is not None
    stopped = isinstance(error, KeyboardInterrupt | SystemExit)
    status = ("KILLED" if stopped else "FAILED") if failed else "FINISHED"
    try:
        if failed:
            message = failure if error is None else f"{type(error).__name__}: {error}"
            client.set_tag(run_id, "error", message[:5000])
    finally:  # whatever happened to the tag, the run must not stay RUNNING
        client.set_terminated(run_id, status)
    return status
