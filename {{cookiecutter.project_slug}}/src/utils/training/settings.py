"""The Trainer's settings from the config's `trainer:` node, with its `null`s decided here.

Two Lightning defaults cost every trial of a sweep without telling the user anything new:
a progress bar (the sweep prints one line per trial) and the sanity check, which runs
validation batches before training to catch a broken `validation_step` early; the later
trials of a sweep run the same code on the same cached data as the first one. A third cost
is no setting: each `Trainer(...)` looks up the callback entry points of every installed
distribution (importlib.metadata, ~4 ms on two cores, up to ~20 ms beside the writer
thread); a process reads them once.
"""

from __future__ import annotations

import functools
from typing import Any

from omegaconf import DictConfig, OmegaConf

LIGHTNING_SANITY_STEPS = 2  # Lightning's default num_sanity_val_steps
_checked_in_this_process = False


def read_callback_entry_points_once() -> None:
    """Lightning's lookup of `lightning.pytorch.callbacks_factory` entry points, cached.

    The factories still run for every Trainer, so each gets callbacks of its own; only
    the list of installed entry points, which does not change while a process runs, is
    kept.
    """
    from lightning.fabric.utilities import registry

    if not hasattr(registry.entry_points, "cache_info"):
        registry.entry_points = functools.cache(registry.entry_points)


def trainer_settings(cfg: DictConfig) -> dict[str, Any]:
    """`cfg.trainer` as keyword arguments for `lightning.Trainer`."""
    global _checked_in_this_process
    read_callback_entry_points_once()
    settings = OmegaConf.to_container(cfg.trainer, resolve=True)
    in_sweep = cfg.sweep.trial_number is not None
    if settings.get("enable_progress_bar") is None:
        settings["enable_progress_bar"] = not in_sweep
    if settings.get("num_sanity_val_steps") is None:
        once = in_sweep and _checked_in_this_process
        settings["num_sanity_val_steps"] = 0 if once else LIGHTNING_SANITY_STEPS
    _checked_in_this_process = True
    return settings


# Config files may only instantiate Lightning's callbacks (Hydra 1.4's execution policy).
CALLBACK_TARGETS = ("lightning.pytorch.callbacks.*",)


def config_callbacks(cfg: DictConfig) -> list[Any]:
    """The callbacks of the config's `callbacks:` node (a null entry is dropped)."""
    from hydra.utils import instantiate

    nodes = [c for c in cfg.callbacks.values() if c]
    return [instantiate(c, _execution_whitelist_=CALLBACK_TARGETS) for c in nodes]
