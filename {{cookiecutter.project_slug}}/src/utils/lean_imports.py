"""Import Lightning without torchmetrics' optional extras that training never uses.

Lightning imports torchmetrics, and torchmetrics imports matplotlib (for `Metric.plot`) and
`scipy.signal` (a few audio and image metrics) whenever they are installed: ~75 MB of every
process that trains, measured with the stack's imports (955 -> 879 MB). Inside
`without_unused_extras()` torchmetrics sees them as missing; the packages themselves stay
importable (the sweep's plots use matplotlib). torchvision is left alone: torchmetrics'
image metrics (LPIPS, FID, ...) need it, and hiding it saves only ~15 MB more.

The cost: in a process that imported Lightning this way, `Metric.plot` and the metrics
built on scipy say their package is not installed although it is. A model that needs them
imports Lightning without this context.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

UNUSED_EXTRAS = frozenset({"matplotlib", "scipy"})


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]


@contextlib.contextmanager
def without_unused_extras(unused: frozenset[str] = UNUSED_EXTRAS) -> Iterator[None]:
    """While inside, lightning_utilities' availability checks deny `unused` packages."""
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
    try:
        yield
    finally:
        imports.RequirementCache._check_requirement = check_requirement
        imports.package_available = package_available
