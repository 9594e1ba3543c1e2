"""A trial's last uploads (checkpoint, plots, MLflow model) written while the next one trains.

A sweep whose trials run in its own process (Hydra's basic launcher) opens
`deferred_writes()` around its trial loop; a `TrainingRun` that finds it open hands over
its final artifacts and its run's end instead of writing them before the trial returns.
One worker thread writes them in order. Nothing is lost on the way:

- a run whose deferred work fails ends FAILED, with the error and `error.txt`;
- leaving the block (the sweep's end, Ctrl-C, SIGTERM) waits for the queue; a second
  interrupt while waiting stops the wait, and each run not yet written ends KILLED with
  a `not_written` tag naming what is missing;
- a run ends FINISHED only after all its artifacts are stored, so the registry, which
  takes FINISHED runs with a model, never registers a half-written one.

Elsewhere (a single run, joblib or Slurm workers) there is no next trial in the process to
overlap with, and runs write everything before they end, as before.
"""

from __future__ import annotations

import logging
import queue
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from src.utils.tracking.store import end_run

log = logging.getLogger(__name__)

# (what it writes, the call that writes it), e.g. ("model", lambda: ...).
Step = tuple[str, Callable[[], Any]]


@dataclass
class _Job:
    client: Any
    run_id: str
    steps: list[Step]
    done: list[str] = field(default_factory=list)
    ended: bool = False


class DeferredWriter:
    """One worker thread that runs each run's steps, then ends the run."""

    def __init__(self) -> None:
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._pending: list[_Job] = []
        self.failures: list[tuple[str, str]] = []  # (run id, error)
        self._thread = threading.Thread(target=self._work, name="deferred-mlflow", daemon=True)
        self._thread.start()

    def submit(self, client: Any, run_id: str, steps: list[Step]) -> None:
        job = _Job(client, run_id, steps)
        with self._lock:
            self._pending.append(job)
        self._queue.put(job)

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            error: BaseException | None = None
            for name, write in job.steps:
                try:
                    write()
                except Exception as exc:  # noqa: BLE001 - recorded on the run, see below
                    error = exc
                    trace = "".join(traceback.format_exception(exc))
                    self._record_failure(job, name, exc, trace)
                    break
                job.done.append(name)
            self._end(job, error)

    def _record_failure(self, job: _Job, name: str, error: Exception, trace: str) -> None:
        message = f"deferred logging of {name} failed: {type(error).__name__}: {error}"
        self.failures.append((job.run_id, message))
        log.error(f"Run {job.run_id}: {message}")
        try:
            job.client.log_text(job.run_id, trace, "error.txt")
        except Exception:  # noqa: BLE001 - the error tag below still says what happened
            pass

    def _end(self, job: _Job, error: BaseException | None) -> None:
        with self._lock:
            if job.ended:  # the wait was interrupted and the run already ended KILLED
                return
            job.ended = True
            self._pending.remove(job)
        failure = None
        if error is not None:
            failure = f"deferred logging failed: {type(error).__name__}: {error}"
        try:
            end_run(job.client, job.run_id, failure=failure)
        except Exception:  # noqa: BLE001 - keep writing the other runs
            log.exception(f"Could not end run {job.run_id}")

    def wait(self) -> None:
        """Return when every submitted run is written and ended; stop the worker."""
        self._queue.put(None)
        while self._thread.is_alive():
            self._thread.join(timeout=0.2)  # short waits, so Ctrl-C is seen at once

    def abandon(self, reason: str) -> None:
        """End every run not yet written KILLED, naming what is missing (after an interrupt)."""
        with self._lock:
            jobs = [job for job in self._pending if not job.ended]
            for job in jobs:
                job.ended = True
            self._pending.clear()
        for job in jobs:
            missing = [name for name, _ in job.steps if name not in job.done]
            try:
                job.client.set_tag(job.run_id, "not_written", ", ".join(missing))
                end_run(job.client, job.run_id, KeyboardInterrupt(reason))
            except Exception:  # noqa: BLE001 - stale_runs cleans up what is left RUNNING
                log.exception(f"Could not end run {job.run_id}")
        if jobs:
            log.warning(f"{len(jobs)} run(s) ended KILLED before their artifacts were written")


_ACTIVE: DeferredWriter | None = None


def active_writer() -> DeferredWriter | None:
    """The open writer of this process's sweep, or None (write before the run ends)."""
    return _ACTIVE


@contextmanager
def deferred_writes() -> Iterator[DeferredWriter]:
    """Open a writer for the block; on leaving it, wait until everything is written."""
    global _ACTIVE
    writer = _ACTIVE = DeferredWriter()
    try:
        yield writer
    except BaseException:
        _ACTIVE = None
        _drain(writer, interrupted=True)
        raise
    _ACTIVE = None
    _drain(writer, interrupted=False)


def _drain(writer: DeferredWriter, interrupted: bool) -> None:
    if interrupted and writer._pending:
        log.warning("Writing the finished trials' artifacts before stopping (Ctrl-C again: skip)")
    try:
        writer.wait()
    except KeyboardInterrupt:
        writer.abandon("interrupted while its artifacts were being written")
        raise
