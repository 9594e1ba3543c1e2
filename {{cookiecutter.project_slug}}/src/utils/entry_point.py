"""Everything a training command does to its own process, in one place, with its gain.

A train.py imports this module first and ends with `run(main)`; nothing here changes what
the experiment's code or any installed package sees. Measured on two cores with the
template's benchmarks/run.py:

1. Garbage collection waits while the script's imports load (the stack's objects live as
   long as the process; collecting them again and again is about a fifth of the
   start-up); `run()` then freezes them out of every later collection. Only the script
   being run pauses it: importing a train.py from a notebook or a test changes nothing.
2. With no CUDA, ROCm or XPU device, Triton (GPU kernels for `torch.compile`, installed
   with torch's CUDA builds) is not loaded during those imports (Lightning imports
   `torch._dynamo`, which imports Triton): ~75 MB of every process and ~0.15 s. On CPU
   `torch.compile` uses its C++ backend as before; with a GPU nothing is hidden.
3. When `main()` returns, the process ends as Python would, less the teardown of every
   loaded module (~0.2 s): executors shut down, threads joined, atexit functions run,
   streams flushed, `sys.exit`'s code kept. An exception takes Python's own path.

`import src` finding this project rather than another installed one is `src/__init__.py`'s.
"""

import atexit
import contextlib
import gc
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, NoReturn


def gpu_present() -> bool:
    """True when torch sees a CUDA/ROCm or XPU device (without initialising CUDA)."""
    import torch

    # device_count() asks NVML first, so a later forked DDP worker can still use CUDA.
    if torch.cuda.device_count() > 0:
        return True
    xpu = getattr(torch, "xpu", None)
    return bool(xpu is not None and xpu.is_available())


def unused_modules() -> list[str]:
    """Modules not to load during the imports: Triton, unless a GPU could run its kernels."""
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


def _imported_by_the_script() -> bool:
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith("<frozen importlib"):
        frame = frame.f_back
    return frame is not None and frame.f_globals.get("__name__") == "__main__"


_imports = contextlib.ExitStack()
if _imported_by_the_script():
    gc.disable()
    _imports.enter_context(hidden_modules(unused_modules()))
    # torch would warn that flop counting misses Triton's kernels: none run here.
    _flop_log = logging.getLogger("torch.utils.flop_counter")
    _imports.callback(_flop_log.setLevel, _flop_log.level)
    _flop_log.setLevel(logging.ERROR)


def run(main: Callable[[], Any]) -> NoReturn:
    """End the imports' arrangements, run `main` and end the process without teardown."""
    from src.utils.hydra_resolvers import register_resolvers

    _imports.close()
    register_resolvers()
    gc.freeze()
    gc.enable()
    # Registered first, so it runs last: an error exit skips the final full collection.
    atexit.register(gc.freeze)
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = _status(stop)
    # Python's own first step at exit: the thread-pool executors' exit hooks (joblib's and
    # concurrent.futures' workers stop), then every other non-daemon thread is waited for.
    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # closed or gone: nothing left to write
    os._exit(code)


def _status(stop: SystemExit) -> int:
    if stop.code is None or isinstance(stop.code, int):
        return stop.code or 0
    print(stop.code, file=sys.stderr)
    return 1
