"""Start a generated project's server script for a test, wait for it, and always stop it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from conftest import project_env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    log: Path
    base_url: str

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def http_status(url: str, host_header: str | None = None, timeout: float = 2.0) -> int | None:
    """The HTTP status of GET `url`, or None when nothing answers yet."""
    request = urllib.request.Request(url, headers={"Host": host_header} if host_header else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return None


@contextlib.contextmanager
def started(
    command: list[str], cwd: Path, log: Path, base_url: str, **env: str
) -> Iterator[Server]:
    """Run `command` in its own process group; kill the whole group on the way out."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=project_env(**env),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the script execs MLflow, which starts uvicorn children
        )
    try:
        yield Server(process, log, base_url)
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_for(server: Server, path: str, timeout: float) -> float:
    """Seconds until GET `path` answers 200; fails early if the process dies."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if http_status(server.base_url + path) == 200:
            return time.monotonic() - start
        if server.process.poll() is not None:
            raise AssertionError(
                f"server exited {server.process.returncode} before answering:\n{server.output()}"
            )
        time.sleep(0.1)
    raise AssertionError(f"no HTTP 200 on {path} within {timeout} s:\n{server.output()}")
