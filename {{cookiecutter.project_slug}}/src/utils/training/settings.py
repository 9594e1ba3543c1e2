"""The Trainer's settings from the config's `trainer:` node, with its `null`s decided here.

Two Lightning defaults cost every trial of a sweep without telling the user anything new:
a progress bar (the sweep prints one line per trial) and the sanity check, which runs
validation batches before training to catch a broken `validation_step` early; the later
trials of a sweep run the same code on the same cached data as the first one.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

LIGHTNING_SANITY_STEPS = 2  # Lightning's default num_sanity_val_steps
_checked_in_this_process = False


def trainer_settings(cfg: DictConfig) -> dict[str, Any]:
    """`cfg.trainer` as keyword arguments for `lightning.Trainer`."""
    global _checked_in_this_process
    settings = OmegaConf.to_container(cfg.trainer, resolve=True)
    in_sweep = cfg.sweep.trial_number is not None
    if settings.get("enable_progress_bar") is None:
        settings["enable_progress_bar"] = not in_sweep
    if settings.get("num_sanity_val_steps") is None:
        once = in_sweep and _checked_in_this_process
        settings["num_sanity_val_steps"] = 0 if once else LIGHTNING_SANITY_STEPS
    _checked_in_this_process = True
    return settings
