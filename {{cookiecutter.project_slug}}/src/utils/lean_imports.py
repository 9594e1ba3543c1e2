"""Import Lightning without optional packages that training on this machine never uses.

Lightning imports torchmetrics, and torchmetrics imports matplotlib (for `Metric.plot`) and
`scipy.signal` (a few audio and image metrics) whenever they are installed: ~75 MB of every
process that trains, measured with the stack's imports (955 -> 879 MB). Inside
`without_unused_extras()` torchmetrics sees them as missing; the packages themselves stay
importable (the sweep's plots use matplotlib). torchvision is left alone: torchmetrics'
image metrics (LPIPS, FID, ...) need it, and hiding it saves only ~15 MB more.

Lightning also imports `torch._dynamo`, which imports Triton (GPU kernels for
`torch.compile`) when it is installed, as it is with torch's CUDA builds on Linux even on
machines without a GPU: another ~75 MB (877 -> 802 MB) and ~0.15 s of start-up there. On a
machine with no CUDA, ROCm or XPU device Triton is hidden while Lightning imports; torch
then remembers it as missing, and `torch.compile` on CPU uses its C++ backend as before.

The cost: in a process that imported Lightning this way, `Metric.plot` and the metrics
built on scipy say their package is not installed although it is. A model that needs them
imports Lightning without this context.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterator

UNUSED_EXTRAS = frozenset({"matplotlib", "scipy"})


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]


def gpu_present() -> bool:
    """True when torch sees a CUDA/ROCm or XPU device (without initialising CUDA)."""
    import torch

    # device_count() asks NVML first, so a later forked DDP worker can still use CUDA.
    if torch.cuda.device_count() > 0:
        return True
    xpu = getattr(torch, "xpu", None)
    return bool(xpu is not None and xpu.is_available())


def unused_modules() -> list[str]:
    """Modules to hide while Lightning imports: Triton, unless a GPU could run its kernels."""
    if "triton" in sys.modules or gpu_present():
        return []
    return ["triton"]


@contextlib.contextmanager
def hidden_modules(modules: list[str]) -> Iterator[None]:
    """`import m` fails for each of `modules` not imported yet while inside (a None entry
    in sys.modules); afterwards they import as usual. One already imported stays as it is."""
    hidden = [name for name in modules if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


@contextlib.contextmanager
def _quiet(logger: str, hush: bool) -> Iterator[None]:
    log = logging.getLogger(logger)
    level = log.level
    if hush:
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


@contextlib.contextmanager
def without_unused_extras(unused: frozenset[str] = UNUSED_EXTRAS) -> Iterator[None]:
    """While inside, lightning_utilities' availability checks deny `unused` packages and
    the modules of `unused_modules()` cannot be imported."""
    from lightning_utilities.core import imports

    check_requirement = imports.RequirementCache._check_requirement
    package_available = imports.package_available

    def check(self: imports.RequirementCache) -> None:
        if self.requirement and _name(self.requirement) in unused:
            self.available = False
            self.message = f"{self.requirement!r} skipped (src.utils.lean_imports)"
            return
        check_requirement(self)

    imports.RequirementCache._check_requirement = check
    imports.package_available = lambda name: name not in unused and package_available(name)
    hidden = unused_modules()
    try:
        # torch would warn that flop counting misses Triton's kernels: none run here.
        with hidden_modules(hidden), _quiet("torch.utils.flop_counter", hush=bool(hidden)):
            yield
    finally:
        imports.RequirementCache._check_requirement = check_requirement
        imports.package_available = package_available
