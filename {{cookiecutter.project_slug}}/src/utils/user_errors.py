"""Show a user's mistake as one clear message instead of a traceback (single runs). In a sweep
it is re-raised: the sweeper records the trial FAILED and decides whether the sweep goes on."""

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

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
        exit_with_message(f"{error}", kind=type(error).__name__)


def exit_with_message(message: str, kind: str = "error") -> NoReturn:
    """Print `error: <message>` once, keep it in the log files, and exit with status 2."""
    print(f"error: {message}", file=sys.stderr)
    # The console already shows the line above; Hydra's log files get it too.
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, f"{kind}: {message}", (), None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and record.levelno >= handler.level:
            handler.handle(record)
    raise SystemExit(EXIT_USER_ERROR)
