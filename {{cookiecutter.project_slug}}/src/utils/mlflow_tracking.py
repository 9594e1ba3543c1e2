"""One MLflow store for the whole project, and the bookkeeping of one training run.

Tracking URI: $MLFLOW_TRACKING_URI when set (a team server), else the SQLite store
`logs/mlruns/mlflow.db` with artifacts in `logs/mlruns/artifacts/`, resolved from the
project root so that training, notebooks and the UI always meet in the same store.
"""

from __future__ import annotations

import getpass
import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from src.utils.project_paths import MLRUNS_DIR, PROJECT_ROOT
from src.utils.stale_runs import owner_tags

# Keys whose values must never reach a tracking server as params (tokens in a URI, say).
_SECRET_WORDS = ("password", "passwd", "secret", "token", "api_key", "apikey", "credential")
REDACTED = "***"
_URL_CREDENTIALS = re.compile(r"(\w[\w+.-]*://)([^:/@\s]+):([^@/\s]+)@")


# How long a tracking server may take to answer the first request before we give up.
# MLflow's own client retries for minutes, which looks like a hang.
SERVER_CHECK_TIMEOUT_S = 5.0


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

    Telemetry is off unless the user asked for it: the project runs offline by default
    and an experiment log should not phone home. Set MLFLOW_DISABLE_TELEMETRY=false to
    opt in.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = tracking_uri(configured_uri)
    if uri.startswith("sqlite:"):
        MLRUNS_DIR.mkdir(parents=True, exist_ok=True)
    elif uri.startswith(("http://", "https://")):
        check_server(uri)
    import mlflow

    mlflow.set_tracking_uri(uri)
    if uri.startswith("sqlite:") and uri not in _READY_STORES:
        _create_store_once(uri)
    return uri


_READY_STORES: set[str] = set()


def _create_store_once(uri: str) -> None:
    """Create (or migrate) a SQLite store under a file lock: parallel trials and sweep
    workers started together on a new project would otherwise race to create the tables
    ("duplicate column name", "table already exists")."""
    from filelock import FileLock
    from mlflow import MlflowClient

    with FileLock(str(MLRUNS_DIR / ".store.lock")):
        MlflowClient(uri).search_experiments(max_results=1)  # builds the tables once
    _READY_STORES.add(uri)


def get_or_create_experiment(client: Any, name: str) -> str:
    """The id of experiment `name`, created with its artifacts under logs/mlruns/artifacts.

    Without an explicit artifact location a local store puts artifacts in ./mlruns of
    the current directory, which would scatter them across the file system.
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    artifact_location = None
    if is_local_store(client.tracking_uri):
        artifact_location = (MLRUNS_DIR / "artifacts" / name).as_uri()
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
    if error is None and failure is None:
        status = "FINISHED"
    else:
        stopped = isinstance(error, KeyboardInterrupt | SystemExit)
        status = "KILLED" if stopped else "FAILED"
    try:
        if error is not None or failure is not None:
            message = failure if error is None else f"{type(error).__name__}: {error}"
            client.set_tag(run_id, "error", message[:5000])
    finally:
        # Whatever happened to the tag, the run must not stay RUNNING.
        client.set_terminated(run_id, status)
    return status


def git_tags(root: Path = PROJECT_ROOT) -> dict[str, str]:
    """MLflow's standard git tags: commit and a dirty flag (empty outside a repository)."""

    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"git_dirty": "unknown (not a git repository)"}
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"mlflow.source.git.commit": commit, "git_dirty": str(bool(dirty)).lower()}


def looks_secret(key: str) -> bool:
    return any(word in key.lower() for word in _SECRET_WORDS)


def redact_url_credentials(value: str) -> str:
    """`postgresql://user:pw@host/db` -> `postgresql://user:***@host/db`."""
    return _URL_CREDENTIALS.sub(rf"\1\2:{REDACTED}@", value)


def redact_tree(value: Any, key: str = "") -> Any:
    """A copy of a nested config with secret-looking keys and URL passwords redacted."""
    if isinstance(value, Mapping):
        return {k: redact_tree(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_tree(v, key) for v in value]
    if looks_secret(key) and value is not None:
        return REDACTED
    return redact_url_credentials(value) if isinstance(value, str) else value


def redact_override(override: str) -> str:
    """`db.password=x` -> `db.password=***`; URL passwords inside any value too."""
    key, sep, value = override.partition("=")
    if sep and looks_secret(key):
        return f"{key}={REDACTED}"
    return redact_url_credentials(override)


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """`{"a": {"b": 1}}` -> `{"a.b": "1"}`, with secret-looking values redacted."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_config(value, prefix=f"{name}."))
        elif looks_secret(str(key)):
            flat[name] = REDACTED
        else:
            flat[name] = redact_url_credentials(str(value))
    return flat


def run_tags(
    *,
    entry_point: str,
    overrides: list[str],
    model_kind: str,
    study_name: str | None = None,
    trial_number: int | None = None,
    parent_run_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """The tags every training run carries (seed 000's list: code, source, model, sweep)."""
    tags = {
        "mlflow.source.name": entry_point,
        "mlflow.source.type": "LOCAL",
        "mlflow.user": _user(),
        "hydra.overrides": " ".join(redact_override(o) for o in overrides),
        "model_kind": model_kind,
        **git_tags(),
        **owner_tags(),
    }
    if study_name is not None:
        tags["study_name"] = study_name
    if trial_number is not None:
        tags["trial_number"] = str(trial_number)
    if parent_run_id is not None:
        tags["mlflow.parentRunId"] = parent_run_id
    tags.update({str(k): str(v) for k, v in (extra or {}).items()})
    return tags


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
