"""What the server commands share: options, .env, the port check, the store, the exec. Standard
library only at import time: outside the project's environment a command says how to install."""

import argparse
import errno
import functools
import importlib.util
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from src.utils.paths import PROJECT_ROOT
from src.utils.tracking.store.mlflow_store import tracking_uri

say = functools.partial(print, file=sys.stderr)  # stdout stays the server's
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class CommandError(Exception):
    """A refusal the user can fix: printed as `<command>: error: ...`, exit status 1."""


def whole_number(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if text.isdigit() and low <= int(text) <= high:
            return int(text)
        raise argparse.ArgumentTypeError(f"want a number from {low} to {high}, got '{text}'")

    return parse


def parser(doc: str | None, port: int, host: bool = True) -> argparse.ArgumentParser:
    """--host and --port; `parse_known_args` leaves every other option to the server. -h is
    --host, as in `mlflow server`; no abbreviations: a prefix of the server's own must reach it."""
    raw, prog = argparse.RawDescriptionHelpFormatter, Path(sys.argv[0]).stem
    options = argparse.ArgumentParser(
        prog, description=doc, formatter_class=raw, add_help=False, allow_abbrev=False
    )
    options.add_argument("--help", action="help")
    if host:
        options.add_argument("--host", "-h", default="127.0.0.1")
    options.add_argument("--port", "-p", type=whole_number(1, 65535), default=str(port))
    return options


def main(command: Callable[[list[str]], None]) -> None:
    try:
        command(sys.argv[1:])
    except CommandError as error:
        say(f"{Path(sys.argv[0]).stem}: error: {error}")
        raise SystemExit(1) from None


def require(module: str, what: str, command: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise CommandError(
            f"{what} is not installed in the active Python environment ({sys.executable}).\n"
            f"  Install the project once:   cd {PROJECT_ROOT} && poetry install\n"
            f"  then start it with:         poetry run bash scripts/{command}"
        )


def load_env_file(path: Path | None) -> None:
    """.env (compose format) into os.environ, whose variables win; require MLflow (dotenv) first."""
    if path is not None and not path.is_file():
        raise CommandError(f"no env file at {path}")
    from dotenv import load_dotenv

    load_dotenv(path or PROJECT_ROOT / ".env", override=False)


def listen(host: str, port: int, what: str, risk: str = "") -> str:
    """Warn who can reach a server without a login (`risk`) beyond loopback; stop at once
    when `host:port` is taken (not with a server's traceback later); the URL to print."""
    if risk and host not in LOOPBACK:
        say(
            f"WARNING: --host {host} serves {what} to every machine that can reach this one "
            f"on port {port}, with no login: anyone who can connect can {risk}. Use it on a "
            f"trusted network only, or tunnel: ssh -L {port}:127.0.0.1:{port} <this machine>"
        )
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        if sys.platform != "win32":  # as the servers bind (Windows: even to a port in use)
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("" if host in ("0.0.0.0", "::") else host, port))
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise CommandError(f"cannot listen on {host}:{port} ({error.strerror})") from None
            raise CommandError(
                f"port {port} on {host} is already in use ({error.strerror}).\n"
                f"Is {what} running there already? Pick a free port: --port {port + 1}"
            ) from None
    return f"http://{socket.gethostname() if host in ('0.0.0.0', '::') else host}:{port}"


def mlflow_store() -> tuple[str, Path | None]:
    """The store training writes to, and its SQLite file, which must exist (opening creates)."""
    uri = tracking_uri()
    db = Path(uri.removeprefix("sqlite:///")).resolve() if uri.startswith("sqlite:") else None
    if db is not None and not db.is_file():
        hint = "Run training first, e.g.: poetry run python src/model/model01/train.py"
        raise CommandError(f"no MLflow store at {db} yet.\n{hint}")
    return uri, db


def exec_python(*args: str) -> NoReturn:
    """Become `python <args>` in the project folder: Ctrl-C, a supervisor's signals reach it."""
    # No telemetry (as mlflow_store); no job runner (GenAI judges): seconds of start-up.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    # This environment's console scripts (`mlflow models serve` runs uvicorn from PATH).
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    os.chdir(PROJECT_ROOT)
    if sys.platform == "win32":  # no exec there: a child, whose exit status is ours
        raise SystemExit(subprocess.call([sys.executable, *args]))
    os.execv(sys.executable, [sys.executable, *args])
