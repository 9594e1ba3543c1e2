"""A DDP run (trainer.devices=N, strategy=ddp, num_nodes) as one MLflow run and one trial.

- Rank 0 owns the MLflow run; the other ranks train and log nothing.
- Lightning starts a machine's other ranks at `trainer.fit` by re-running the command line;
  under `-m` each would start the whole sweep again, so here a rank runs only its own job.
- Ctrl-C and SIGTERM stop every rank without a collective inside a signal handler; a rank
  failing alone stops rank 0 with SIGTERM (run KILLED), not SIGKILL (run left RUNNING).
- Afterwards no process group or launcher variable is left: the next trial starts its own.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lightning.fabric.strategies.launchers.subprocess_script import _ChildProcessObserver

# Rank 0 hands its run id and Trainer settings to the ranks it starts (they inherit its env).
RUN_ID_ENV = "TRAINING_RUN_ID"
SETTINGS_ENV = "TRAINING_TRAINER_SETTINGS"
# Set by Lightning's launcher; left there, a sweep's next trial would think its ranks exist.
_LAUNCHER_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
_SAVED_ENV = (*_LAUNCHER_ENV, "OMP_NUM_THREADS", RUN_ID_ENV, SETTINGS_ENV)
# Hydra overrides that belong to the sweep, not to the job a rank runs.
_SWEEP_ONLY = tuple(
    "hydra.mode hydra.sweep hydra.sweeper hydra/sweeper hydra.launcher hydra/launcher "
    "hydra.run hydra.job.name hydra.output_subdir".split()
)
# Seconds rank 0 gets to end its run after a SIGTERM before it is killed (stuck in a collective).
_SHUTDOWN_GRACE_S = 60

_observers: list[_Observer] = []
_entry_script = Path()


def is_rank_zero() -> bool:
    """Whether this process owns the job's MLflow run: global rank 0, or the only process.
    Read from the launchers' (Lightning, torchrun, Slurm) environment, in Lightning's order,
    so it is known before the Trainer exists."""
    rank = 0
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if os.environ.get(key):
            rank = int(os.environ[key])
            break
    node = int(os.environ.get("NODE_RANK") or os.environ.get("GROUP_RANK") or 0)
    return rank == 0 and node == 0


class OtherRankRun:
    """What ranks > 0 hold instead of a `TrainingRun`: the same calls, nothing created or
    logged. Lightning's MLflow logger logs on rank 0 only; these ranks have none."""

    logger = False
    run_name = ""

    def __init__(self) -> None:
        self.run_id = os.environ.get(RUN_ID_ENV, "")

    def __enter__(self) -> OtherRankRun:
        return self

    def __exit__(self, *exc_info: object) -> bool:
        return False

    def _skip(self, *args: Any, **kwargs: Any) -> None:
        """Each `TrainingRun.log_*` call: nothing is logged on this rank."""

    log_data_versions = log_metrics = log_file = log_image = log_pytorch_model = _skip


@contextmanager
def quiet_unless_rank_zero(*stopped_together: type[BaseException]) -> Iterator[None]:
    """On ranks > 0: no log file lines, no message twice, and exit 0 on what every rank
    raises together (`stopped_together`, Ctrl-C, SIGTERM), since rank 0 reports it. Exiting
    non-zero would make Lightning stop rank 0: a FAILED trial would stop the whole sweep."""
    if is_rank_zero():
        yield
        return
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        root.removeHandler(handler)
        handler.close()
    level = root.level
    root.setLevel(logging.WARNING)
    try:
        yield
    except (*stopped_together, KeyboardInterrupt, SystemExit):
        raise SystemExit(0) from None
    finally:
        root.setLevel(level)


@contextmanager
def launched_ranks(
    run_id: str, settings: dict[str, Any], script: str | Path
) -> Iterator[dict[str, Any]]:
    """Around the Trainer's fit: the ranks Lightning starts run `script` for this job only
    and know `run_id`; afterwards the process group and the launcher's variables are gone.
    Yields rank 0's Trainer settings for every rank: a rank deciding for itself (each rank > 0
    is a new process, so would not skip a later trial's sanity check) would wait forever."""
    import torch

    saved = {key: os.environ.get(key) for key in _SAVED_ENV}
    threads = torch.get_num_threads()
    if is_rank_zero():
        os.environ[RUN_ID_ENV] = run_id
        os.environ[SETTINGS_ENV] = json.dumps(settings)
    elif os.environ.get(SETTINGS_ENV):
        settings = json.loads(os.environ[SETTINGS_ENV])
    global _entry_script
    _entry_script = Path(script).resolve()
    _patch_lightning()
    try:
        yield settings
    finally:
        for observer in _observers:
            observer.stop()
        _observers.clear()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        torch.set_num_threads(threads)


def rank_command(local_rank: int) -> tuple[list[str], str]:
    """The command line that starts rank `local_rank` of this Hydra job, and its folder.
    Lightning's re-uses `sys.argv` (in a trial: the sweep); this one runs the trial's script
    with its config, the job's overrides and non-sweep Hydra ones, into the job's folder."""
    from hydra._internal.utils import get_args
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd

    hydra = HydraConfig.get()
    command = [sys.executable, str(_entry_script), "--config-name", hydra.job.config_name]
    # A trial run by a launcher's worker (joblib, submitit) has the worker's command line.
    if Path(sys.argv[0]).resolve() == _entry_script:
        args = get_args(sys.argv[1:])  # as Hydra read them
        for flag, value in (("--config-path", args.config_path), ("--config-dir", args.config_dir)):
            if value:
                command += [flag, value]
    for override in hydra.overrides.hydra:
        if not override.split("=", 1)[0].lstrip("+~").startswith(_SWEEP_ONLY):
            command.append(override)
    command += list(hydra.overrides.task)
    command += [
        f'hydra.run.dir="{hydra.runtime.output_dir}"',
        f"hydra.job.name=train_ddp_process_{local_rank}",
        "hydra.output_subdir=null",  # rank 0 writes the job's .hydra folder
    ]
    return command, get_original_cwd()


def _patch_lightning() -> None:
    from lightning.pytorch.strategies.launchers import subprocess_script
    from lightning.pytorch.trainer.connectors.signal_connector import _SignalConnector

    subprocess_script._hydra_subprocess_cmd = rank_command
    subprocess_script._launch_process_observer = _observe
    _SignalConnector._sigterm_notifier_fn = _note_sigterm


def _note_sigterm(connector: Any, signum: int, frame: Any) -> None:
    """Lightning's SIGTERM notifier without its broadcast: a collective started inside a
    signal handler meets a rank waiting in another one, and both hang (measured). The flag
    reaches every rank through the loop's per-step broadcast; sigterm_as_interrupt, chained
    after this, stops rank 0 at once (run KILLED, its ranks killed by Lightning)."""
    connector.received_sigterm = True


class _Observer(_ChildProcessObserver):
    """Lightning's watch on the ranks it started, with a gentler end for rank 0."""

    def __init__(self, main_pid: int, child_processes: list[Any]) -> None:
        super().__init__(main_pid=main_pid, child_processes=child_processes)
        self.stopped = threading.Event()

    def stop(self) -> None:
        # Rank 0 ends the job itself from here on; ranks it stops are not failures.
        self.stopped.set()

    def _run(self) -> bool:
        return self.stopped.is_set() or super()._run()

    def _terminate_all(self) -> None:
        if self.stopped.is_set():
            return
        for process in self._child_processes:
            process.send_signal(self._termination_signal)
        # SIGTERM reaches rank 0 as Ctrl-C (sigterm_as_interrupt), so its run ends KILLED.
        os.kill(self._main_pid, signal.SIGTERM)
        if not self.stopped.wait(_SHUTDOWN_GRACE_S):
            os.kill(self._main_pid, self._termination_signal)


def _observe(child_processes: list[Any]) -> None:
    observer = _Observer(main_pid=os.getpid(), child_processes=child_processes)
    _observers.append(observer)
    observer.start()
