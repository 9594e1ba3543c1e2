"""A throwaway PostgreSQL cluster for the scaling tests: `initdb` + `pg_ctl` on 127.0.0.1.

Uses the server binaries of Debian's `postgresql` package (.ci/run installs it). Tests that
need it skip with the reason when the binaries are missing. The cluster lives in a fresh
temporary folder, listens on a free loopback port with password authentication, and is
stopped and deleted at the end of the session. PostgreSQL refuses to run as root, so under
root the server runs as the `postgres` user (or `nobody`).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from server_process import free_port

USER = "mlflow"


def server_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl: PATH first, then Debian's versioned folders."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(os.path.realpath(initdb)).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    for initdb in reversed(candidates):
        folder = Path(initdb).parent
        if (folder / "pg_ctl").is_file():
            return folder
    return None


def _server_user() -> str | None:
    """Who runs the server: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists")


@dataclass
class PostgresServer:
    bin_dir: Path
    folder: Path
    port: int
    password: str
    run_as: str | None
    host: str = "127.0.0.1"
    user: str = USER

    def url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        """A SQLAlchemy URL (Optuna, MLflow) with the password in it."""
        return f"{driver}://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database `name`; return its SQLAlchemy URL."""
        env = dict(os.environ, PGPASSWORD=self.password)
        createdb = self.bin_dir / "createdb"  # Debian keeps the client tools there too
        program = str(createdb) if createdb.is_file() else shutil.which("createdb") or "createdb"
        command = [program, "-h", self.host, "-p", str(self.port), "-U", self.user, name]
        subprocess.run(command, env=env, check=True, capture_output=True, text=True, timeout=60)
        return self.url(name)

    def log(self) -> str:
        log = self.folder / "server.log"
        return log.read_text(errors="replace") if log.is_file() else ""


def _as_server_user(command: list[str], run_as: str | None) -> list[str]:
    if run_as is None:
        return command
    if shutil.which("runuser"):
        return ["runuser", "-u", run_as, "--", *command]
    import shlex

    return ["su", run_as, "-s", "/bin/sh", "-c", shlex.join(command)]


def _run(command: list[str], run_as: str | None, timeout: float = 120) -> None:
    result = subprocess.run(
        _as_server_user(command, run_as), capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )


@pytest.fixture(scope="session", name="postgres_server")
def postgres_server_fixture() -> Iterator[PostgresServer]:
    """Import it into a test module; tests then ask for `postgres_server`."""
    bin_dir = server_bin_dir()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under "
            "/usr/lib/postgresql/*/bin: install Debian's `postgresql` package (.ci/run does)"
        )
    run_as = _server_user()
    # Not pytest's tmp folder: its parents are private to us, and the server may be
    # another user.
    folder = Path(tempfile.mkdtemp(prefix="pg-scaling-"))
    password = secrets.token_urlsafe(16)
    pwfile = folder / "pwfile"
    pwfile.write_text(password + "\n")
    if run_as is not None:
        entry = pwd.getpwnam(run_as)
        for path in (folder, pwfile):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    data = folder / "data"
    port = free_port()
    server = PostgresServer(bin_dir, folder, port, password, run_as)
    try:
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                USER,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            run_as,
        )
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
        _run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(folder / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ],
            run_as,
        )
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {error}\n{server.log()}") from error
    try:
        yield server
    finally:
        try:
            _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], run_as)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
