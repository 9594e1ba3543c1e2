"""A sweep's store writes, done by a worker thread while its next trials train.

Under Hydra's basic launcher a sweep opens `deferred_writes()` around its trial loop, and each
`TrainingRun` queues its writes (params, config, environment, checkpoint, plots, model) and its
end there. A run ends only once all are written: FINISHED, or FAILED (`error.txt`, the skipped
writes in a `not_written` tag), so the registry never takes a half-written run. Leaving the block
waits for the queue; a second Ctrl-C ends each open run KILLED, with a `not_written` tag.
Elsewhere (a single run, joblib or Slurm workers) runs write as they go."""

from __future__ import annotations

import logging
import queue
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from src.utils.tracking.store.mlflow_store import end_run

log = logging.getLogger(__name__)
_ACTIVE: DeferredWriter | None = None  # see active_writer()


@dataclass
class RunWrites:  # what the writer knows of one run: its queued writes and how it ends
    client: Any
    run_id: str
    pending: list[str] = field(default_factory=list)  # queued, not yet written
    failure: str | None = None
    ended: bool = False


class DeferredWriter:
    """One worker thread that writes each run's queued items, then ends the run."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple | None] = queue.Queue()
        self._lock = threading.Lock()
        self._runs: list[RunWrites] = []
        self.failures: list[tuple[str, str]] = []  # (run id, error)
        self._thread = threading.Thread(target=self._work, name="deferred-mlflow", daemon=True)
        self._thread.start()

    def open_run(self, client: Any, run_id: str) -> RunWrites:
        run = RunWrites(client, run_id)
        with self._lock:
            self._runs.append(run)
        return run

    def write(self, run: RunWrites, name: str, write: Callable[[], Any]) -> None:
        """Queue `write` (what it writes: `name`) for `run`."""
        with self._lock:
            run.pending.append(name)
        self._queue.put((self._write, run, name, write))

    def end(self, run: RunWrites, error: BaseException | None = None, trace: str = "") -> None:
        """Queue the run's end, after its writes: its status follows `error` and them."""
        self._queue.put((self._end, run, error, trace))

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            item[0](*item[1:])  # self._write or self._end, with its arguments

    def _write(self, run: RunWrites, name: str, write: Callable[[], Any]) -> None:
        if run.failure is None and not run.ended:
            try:
                write()
            except Exception as error:  # noqa: BLE001 - recorded on the run, see _end
                run.failure = f"deferred logging of {name} failed: {type(error).__name__}: {error}"
                self.failures.append((run.run_id, run.failure))
                log.error(f"Run {run.run_id}: {run.failure}")
                _log_error_file(run, "".join(traceback.format_exception(error)))
            else:
                with self._lock:
                    run.pending.remove(name)

    def _end(self, run: RunWrites, error: BaseException | None, trace: str) -> None:
        with self._lock:
            if run.ended:  # the wait was interrupted and the run already ended KILLED
                return
            run.ended = True
            self._runs.remove(run)
            not_written = list(run.pending)
        try:
            if not_written:
                run.client.set_tag(run.run_id, "not_written", ", ".join(not_written))
            if error is not None and trace:
                _log_error_file(run, trace)
            end_run(run.client, run.run_id, error, failure=run.failure)
        except Exception:  # noqa: BLE001 - keep writing the other runs
            log.exception(f"Could not end run {run.run_id}")

    def wait(self) -> None:
        """Return when every queued run is written and ended; stop the worker."""
        self._queue.put(None)
        while self._thread.is_alive():
            self._thread.join(timeout=0.2)  # short waits, so Ctrl-C is seen at once

    def abandon(self, reason: str) -> None:
        """End every run not yet ended KILLED, naming what is missing (after an interrupt)."""
        with self._lock:
            runs, self._runs = self._runs, []  # a run leaves the list when it ends
            for run in runs:
                run.ended = True
        for run in runs:
            try:
                run.client.set_tag(run.run_id, "not_written", ", ".join(run.pending) or "none")
                end_run(run.client, run.run_id, KeyboardInterrupt(reason))
            except Exception:  # noqa: BLE001 - stale_runs cleans up what is left RUNNING
                log.exception(f"Could not end run {run.run_id}")
        if runs:
            log.warning(f"{len(runs)} run(s) ended KILLED before their writes were done")


def _log_error_file(run: RunWrites, trace: str) -> None:
    with suppress(Exception):  # the error tag still says what happened
        run.client.log_text(run.run_id, trace, "error.txt")


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
        if writer._runs:
            log.warning("Writing the finished trials' results before stopping (Ctrl-C again: skip)")
        raise
    finally:
        _ACTIVE = None
        try:
            writer.wait()
        except KeyboardInterrupt:
            writer.abandon("interrupted while its results were being written")
            raise
