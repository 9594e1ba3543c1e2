"""One MLflow store for the whole project: where it is, and opening and closing runs in it.

$MLFLOW_TRACKING_URI when set (a team server), else `logs/mlruns/mlflow.db` with artifacts in
`logs/mlruns/artifacts/`, from the project root: training, notebooks and the UI meet there.
"""

from __future__ import annotations

import os
from typing import Any

from src.utils.paths import MLRUNS_DIR
from src.utils.tracking.store.sqlite_wal import use_write_ahead_log

# Seconds a tracking server gets to answer; MLflow's own client retries for minutes (a "hang").
SERVER_CHECK_TIMEOUT_S = 5.0
_READY_STORES: set[str] = set()  # SQLite stores this process has created or checked


class TrackingServerUnreachable(ConnectionError):
    """MLFLOW_TRACKING_URI points at a server that does not answer."""


def check_server(uri: str, timeout: float = SERVER_CHECK_TIMEOUT_S) -> None:
    """Fail within `timeout` seconds with advice when an http(s) tracking server is down."""
    import urllib.error
    import urllib.request

    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout):  # noqa: S310 - the user's own URI
            return
    except urllib.error.HTTPError:
        return  # it answered: an auth error or a proxy's 404 is MLflow's to report
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise TrackingServerUnreachable(
            f"The MLflow tracking server at {uri} (MLFLOW_TRACKING_URI) did not answer within "
            f"{timeout:.0f} s ({reason}). Start the server, or unset "
            "MLFLOW_TRACKING_URI to log into this project's logs/mlruns"
        ) from None


def default_tracking_uri() -> str:
    return f"sqlite:///{MLRUNS_DIR / 'mlflow.db'}"


def tracking_uri(configured: str | None = None) -> str:
    """The config's URI if given, else $MLFLOW_TRACKING_URI, else the project's SQLite store."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def is_local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def configure_mlflow(configured_uri: str | None = None) -> str:
    """Point MLflow (fluent API and clients) at the project's store; return the URI.
    Telemetry is off (offline by default; a log should not phone home) unless the user set
    MLFLOW_DISABLE_TELEMETRY=false."""
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
        # Under a file lock: parallel trials and workers started together on a new project
        # would race to create the tables ("duplicate column name", "table already exists").
        from filelock import FileLock

        with FileLock(str(MLRUNS_DIR / ".store.lock")):
            mlflow.MlflowClient(uri).search_experiments(max_results=1)  # builds the tables once
        _READY_STORES.add(uri)
    return uri


def get_or_create_experiment(client: Any, name: str) -> str:
    """The id of experiment `name`, created with its artifacts under logs/mlruns/artifacts
    (without an explicit location a local store would put them in ./mlruns of the cwd)."""
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
    """End a run and return its status: FINISHED; KILLED when stopped (Ctrl-C, SIGTERM,
    sys.exit); FAILED when it raised, or when `failure` says why it failed without raising.
    The `error` tag says what stopped it."""
    failed = error is not None or failure is not None
    stopped = isinstance(error, KeyboardInterrupt | SystemExit)
    status = ("KILLED" if stopped else "FAILED") if failed else "FINISHED"
    try:
        if failed:
            message = failure if error is None else f"{type(error).__name__}: {error}"
            client.set_tag(run_id, "error", message[:5000])
    finally:
        # Whatever happened to the tag, the run must not stay RUNNING.
        client.set_terminated(run_id, status)
    return status
