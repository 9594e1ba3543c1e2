"""Show a user's mistake as one clear message instead of a traceback (single runs).

In a sweep the error is re-raised instead: the sweeper records the trial as FAILED with
the message and decides whether the sweep goes on.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

EXIT_USER_ERROR = 2


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@contextmanager
def report_as_message(*errors: type[BaseException]) -> Iterator[None]:
    """Turn `errors` raised inside the block into `error: <message>` and exit status 2."""
    try:
        yield
    except errors as error:
        if in_multirun():
            raise
        log.error(f"{type(error).__name__}: {error}")
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR) from None
