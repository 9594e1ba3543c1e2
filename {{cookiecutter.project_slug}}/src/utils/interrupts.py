"""SIGTERM and SIGINT as Ctrl-C, so a stopped run or sweep ends KILLED instead of vanishing,
and never in the middle of a database write: a KeyboardInterrupt inside an open SQLite
transaction can keep its write lock, and every later write (ending the run KILLED
included) fails after 20 s (measured: one Ctrl-C in 40). Writes through `interrupt_safe`
objects delay the interrupt until done; a second signal during one interrupts at once.
"""

import functools
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_writes_in_progress = 0  # main thread only: signal handlers run there
_pending: str | None = None  # the signal that arrived during a write, raised after it


def _interrupt(signum: int, frame: Any) -> None:
    global _pending
    message = f"received signal {signal.Signals(signum).name}"
    if _writes_in_progress and _pending is None:
        _pending = message
        return
    _pending = None
    raise KeyboardInterrupt(message)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM arriving inside the block are raised when it ends."""
    global _writes_in_progress, _pending
    if threading.current_thread() is not threading.main_thread():
        yield  # signals never interrupt other threads
        return
    _writes_in_progress += 1
    try:
        yield
    finally:
        _writes_in_progress -= 1
        if _writes_in_progress == 0 and _pending is not None:
            message, _pending = _pending, None
            raise KeyboardInterrupt(message)


class _InterruptSafe:
    """`target` whose method calls each run inside `interrupts_deferred()`."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        if name == "_target":  # not set yet (a copy being built): no endless lookup
            raise AttributeError(name)
        value = getattr(self._target, name)
        if not callable(value):
            return value

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Any:
            with interrupts_deferred():
                return value(*args, **kwargs)

        return call


def interrupt_safe(target: Any) -> Any:
    """A proxy for a database client (MlflowClient, an Optuna study) whose calls are never
    cut half-way by Ctrl-C or SIGTERM; it has the client's methods and attributes."""
    return _InterruptSafe(target)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (and SIGINT) as Ctrl-C inside the block: runs end KILLED, not vanish
    (Lightning chains this handler after its own during `fit`)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    # Python's own Ctrl-C handler raises even inside a write; a process started in the
    # background by a shell inherits SIGINT ignored, yet `kill -INT` should still stop it.
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int in (signal.SIG_IGN, signal.default_int_handler, _interrupt):
        signal.signal(signal.SIGINT, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
