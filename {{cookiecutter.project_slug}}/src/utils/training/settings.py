"""The Trainer's settings from the config's `trainer:` node, with its `null`s decided here: no
progress bar in a sweep (it prints a line per trial) and no sanity check of `validation_step`
after a sweep process's first trial (same code, same cached data). Each `Trainer(...)` also
looks up every installed distribution's callback entry points (importlib.metadata, ~4 ms on
two cores, up to ~20 ms beside the writer thread); a process reads them once."""

import functools
from typing import Any

from omegaconf import DictConfig, OmegaConf

LIGHTNING_SANITY_STEPS = 2  # Lightning's default num_sanity_val_steps
_checked_in_this_process = False


def read_callback_entry_points_once() -> None:
    """Lightning's lookup of `lightning.pytorch.callbacks_factory` entry points, cached. The
    factories still run for every Trainer (each gets its own callbacks); only the list of
    installed entry points, fixed while a process runs, is kept."""
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
