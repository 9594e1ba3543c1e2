"""SIGTERM and SIGINT as Ctrl-C, so a stopped run or sweep ends KILLED instead of vanishing."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (and SIGINT) as Ctrl-C inside the block: runs end KILLED, not vanish.

    Lightning chains this handler after its own, so a SIGTERM during `fit` also reaches it.
    """

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"received signal {signal.Signals(signum).name}")

    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    # A process started in the background by a non-interactive shell inherits SIGINT as
    # ignored, and Python then never raises KeyboardInterrupt; a signal sent to it on
    # purpose (kill -INT) should still stop it cleanly.
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
