"""The search space given to `-m`, checked before any study or run exists: Optuna's checks are
tracebacks from deep inside the sweeper, and some mistakes pass silently (an unknown tag such as
`tag(lug, ...)` is ignored, `interval(a, a)` searches nothing). Each gets one message here,
naming the parameter and the fix."""

from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep
from hydra.errors import HydraException
from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

# Tags the Optuna sweeper understands on interval(...): log scale.
KNOWN_TAGS = {"log"}
EXAMPLE = "'learning_rate=interval(0.0001,0.01)' or 'learning_rate=tag(log, interval(1e-5,1e-2))'"


class SearchSpaceError(ValueError):
    """A searched parameter that cannot be searched; the message says how to write it."""


def parse_search_space(arguments: list[str]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(distributions, fixed params, fixed overrides) of the sweep's overrides; SearchSpaceError."""
    try:
        parsed = OverridesParser.create().parse_overrides(list(arguments))
    except HydraException as error:
        raise SearchSpaceError(f"{error}. A searched parameter looks like {EXAMPLE}") from None
    for override in [o for o in parsed if o.is_interval_sweep()]:
        key, sweep = override.get_key_element(), override.value()
        assert isinstance(sweep, IntervalSweep)
        if unknown := set(sweep.tags) - KNOWN_TAGS:
            raise SearchSpaceError(
                f"{key}: unknown tag {', '.join(sorted(unknown))!r} on interval(...); the "
                f"Optuna sweeper knows only 'log', as in {EXAMPLE}"
            )
        low, high = sweep.start, sweep.end
        if low >= high:
            what, fix = "empty", f"a wider interval, or fix it with {key}={low}"
            if low > high:
                what, fix = "reversed", f"interval({high},{low})"
            raise SearchSpaceError(
                f"{key}=interval({low},{high}) is {what}: the lower bound must be below the "
                f"upper one; use {fix}"
            )
        if "log" in sweep.tags and low <= 0:
            raise SearchSpaceError(
                f"{key}: a log-scale interval must start above 0, got {low}; e.g. {EXAMPLE}"
            )
    try:
        return create_params_from_overrides(list(arguments))
    except (ValueError, AssertionError) as error:
        raise SearchSpaceError(f"{error} (search space: {' '.join(arguments)})") from None
