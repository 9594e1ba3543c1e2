"""A throwaway one-node Slurm cluster: `munged` + `slurmctld` + `slurmd` on this machine.

Uses Debian's `slurm-wlm` and `munge` packages (.ci/run installs them) and runs as root,
as Slurm's daemons must to start jobs for a user. Everything lives in a fresh temporary
folder (config, state, spool, logs, munge's socket and key); `SLURM_CONF` points the
client commands (sbatch, squeue, scancel, submitit) at it. Without the packages or root,
tests skip with the reason, and fail instead under CI (CI=true): there they must run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from server_process import free_port

DAEMONS = ("munged", "slurmctld", "slurmd")


@dataclass
class SlurmCluster:
    folder: Path
    conf: Path

    def env(self) -> dict[str, str]:
        """What a process needs to use this cluster (sbatch, submitit)."""
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *command: str) -> str:
        done = subprocess.run(
            command, env={**os.environ, **self.env()}, capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, f"{' '.join(command)}: {done.stdout}{done.stderr}"
        return done.stdout

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name} ---\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.folder.glob("*.log"))
        )


def _missing() -> str | None:
    absent = [d for d in (*DAEMONS, "sbatch", "scontrol") if shutil.which(d) is None]
    for folder in ("/usr/sbin", "/sbin"):
        absent = [d for d in absent if not Path(folder, d).is_file()]
    if absent:
        return f"{', '.join(absent)} not found: install Debian's slurm-wlm and munge (.ci/run does)"
    if os.geteuid() != 0:
        return "Slurm's daemons must run as root here"
    return None


def _daemon(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


@pytest.fixture(scope="session", name="slurm_cluster")
def slurm_cluster_fixture() -> Iterator[SlurmCluster]:
    """Import it into a test module; tests then ask for `slurm_cluster`."""
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the Slurm tests: {reason}")
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="slurm-"))
    os.chmod(folder, 0o755)
    host = socket.gethostname().split(".")[0]
    munge_socket = folder / "munge.socket"
    key = folder / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)
    conf = folder / "slurm.conf"
    conf.write_text(
        "\n".join(
            [
                "ClusterName=throwaway",
                f"SlurmctldHost={host}",
                "SlurmUser=root",
                "SlurmdUser=root",
                f"SlurmctldPort={free_port()}",
                f"SlurmdPort={free_port()}",
                # A requeued job waits cred_expire seconds before it may start again
                # (Slurm's default: 120).
                f"AuthInfo=socket={munge_socket},cred_expire=5",
                f"StateSaveLocation={folder / 'state'}",
                f"SlurmdSpoolDir={folder / 'spool'}",
                f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
                f"SlurmdPidFile={folder / 'slurmd.pid'}",
                f"SlurmctldLogFile={folder / 'slurmctld.log'}",
                f"SlurmdLogFile={folder / 'slurmd.log'}",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core",
                "MpiDefault=none",
                "ReturnToService=2",
                "JobAcctGatherType=jobacct_gather/none",
                "AccountingStorageType=accounting_storage/none",
                "SchedulerParameters=sched_interval=1",
                f"NodeName={host} CPUs={os.cpu_count()} State=UNKNOWN",
                f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )
    )
    for sub in ("state", "spool"):
        (folder / sub).mkdir()
    env = {**os.environ, "SLURM_CONF": str(conf)}
    commands = [
        [
            _daemon("munged"),
            "--force",
            f"--socket={munge_socket}",
            f"--key-file={key}",
            f"--pid-file={folder / 'munged.pid'}",
            f"--log-file={folder / 'munged.log'}",
            f"--seed-file={folder / 'munged.seed'}",
        ],
        [_daemon("slurmctld"), "-f", str(conf), "-i"],
        [_daemon("slurmd"), "-f", str(conf)],
    ]
    cluster = SlurmCluster(folder, conf)
    try:
        for command in commands:
            subprocess.run(command, env=env, check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 60
        while "idle" not in cluster.run("sinfo", "-h", "-o", "%t"):
            if time.monotonic() > deadline:
                raise RuntimeError("the Slurm node did not become idle within 60 s")
            time.sleep(0.5)
        yield cluster
    except (subprocess.SubprocessError, RuntimeError, AssertionError) as error:
        raise RuntimeError(f"could not start Slurm: {error}\n{cluster.logs()}") from error
    finally:
        # A job's steps outlive the daemons (slurmstepd): cancelled and waited for, so that
        # no trial goes on writing into a test's project after the session.
        with contextlib.suppress(Exception):
            cluster.run("scancel", "--full", "--partition=debug")
            deadline = time.monotonic() + 30
            while cluster.run("squeue", "-h").strip() and time.monotonic() < deadline:
                time.sleep(0.5)
        for pid_file in ("slurmd.pid", "slurmctld.pid", "munged.pid"):
            try:
                os.kill(int((folder / pid_file).read_text()), 15)
            except (OSError, ValueError):
                pass
        time.sleep(1)
        shutil.rmtree(folder, ignore_errors=True)
