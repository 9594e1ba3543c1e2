"""The project's SQLite stores (logs/mlruns/mlflow.db, logs/optuna.db) in write-ahead-log mode.

In the default rollback-journal mode every commit creates, syncs and deletes a journal, and
a reader (the MLflow UI, optuna-dashboard) blocks the writer ("database is locked"). In WAL
mode readers and the writer do not block each other and commits stay durable
(synchronous=FULL). Measured (2 cores, benchmarks/run.py, 2026-12-01): ~0.02 s less per
trial of a 5-trial sweep, a new store ~0.3 s faster. The mode is kept in the database file,
so later readers use it too. WAL needs every process on one machine: on a network file
system a store keeps the rollback journal. At exit the log is copied into the database
file, so a copy of mlflow.db alone holds every run.
"""

import atexit
import contextlib
import sqlite3
from pathlib import Path
from typing import Any

# File system types (/proc/mounts) that are shared between machines.
NETWORK_FILE_SYSTEMS = frozenset(
    "nfs nfs4 cifs smb3 smbfs 9p afs ceph fuse.ceph glusterfs fuse.glusterfs lustre gpfs "
    "beegfs fuse.sshfs davfs".split()
)

_IN_WAL_MODE: set[str] = set()  # databases to checkpoint at exit
_FILE_SYSTEMS: dict[str, str | None] = {}
_registered = False


def file_system_type(path: Path, mounts: str | None = None) -> str | None:
    """The type of the file system that holds `path` (Linux's /proc/mounts); None if unknown."""
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            return None
    target = str(path)
    best, kind = "", None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, kind = point, fields[2]
    return kind


def use_write_ahead_log() -> None:
    """Switch every SQLite database this process opens through SQLAlchemy to WAL mode."""
    global _registered
    if _registered:
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    event.listen(Engine, "connect", _on_connect)
    atexit.register(checkpoint_all)
    _registered = True


def _on_connect(connection: Any, _record: Any) -> None:
    if not isinstance(connection, sqlite3.Connection):
        return
    row = connection.execute("PRAGMA database_list").fetchone()
    path = row[2] if row else ""
    if not path:  # an in-memory database
        return
    if path not in _FILE_SYSTEMS:
        _FILE_SYSTEMS[path] = file_system_type(Path(path).resolve())
    if _FILE_SYSTEMS[path] in NETWORK_FILE_SYSTEMS:
        return
    try:
        mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    except sqlite3.OperationalError:
        return  # another process holds a lock: the next connection switches it
    if mode == "wal":
        _IN_WAL_MODE.add(path)


def checkpoint_all(timeout_s: float = 1.0) -> None:
    """Copy each WAL database's log into its database file and empty the log."""
    for path in sorted(_IN_WAL_MODE):
        with contextlib.suppress(sqlite3.Error):
            with contextlib.closing(sqlite3.connect(path, timeout=timeout_s)) as database:
                database.execute("PRAGMA wal_checkpoint(TRUNCATE)")
