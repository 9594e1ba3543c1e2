"""A run that can be continued where it stopped, as Lightning trains it.

- `LastCheckpoint` writes `last.ckpt` (model, optimizer, loops, callbacks after the last
  epoch) beside `best.ckpt` (atomically, see checkpoint_io), with the job's overrides and
  model config; tracking/runs/resume.py finds a killed run's and continues it.
- Lightning restores no random generator, so each epoch shuffles by (seed, epoch)
  (`EpochShuffle`) and reseeds the global generators (dropout): epoch 4 trains the same,
  resumed or not.
"""

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import RandomSampler


def _epoch_seed(seed: int, epoch: int) -> int:
    return (int(seed) * 1_000_003 + int(epoch)) % 2**32


class EpochShuffle(RandomSampler):
    """A random order of the data that depends on (seed, epoch) only (Lightning sets the
    epoch); under DDP Lightning swaps it for its DistributedSampler, which does the same."""

    def __init__(self, data: Any, seed: int) -> None:
        super().__init__(data)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Any:
        self.generator = torch.Generator().manual_seed(_epoch_seed(self.seed, self.epoch))
        return super().__iter__()


class LastCheckpoint(ModelCheckpoint):
    """`last.ckpt` after every epoch (Lightning's `save_last` skips the epochs that were not
    the best), with the job's overrides; the global generators reseeded per epoch."""

    def __init__(self, dirpath: Path, cfg: DictConfig, resume: Any) -> None:
        """`resume`: tracking's ResumePoint of a continued run, with its overrides."""
        from hydra.core.hydra_config import HydraConfig

        super().__init__(dirpath=dirpath, filename="last", enable_version_counter=False)
        self.seed = cfg.seed
        overrides = resume.overrides if resume else None
        if overrides is None and HydraConfig.initialized():
            overrides = list(HydraConfig.get().overrides.task)
        self.saved = {"overrides": overrides or [], "model": OmegaConf.to_container(cfg.model)}

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        seed = _epoch_seed(self.seed, trainer.current_epoch)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict) -> None:
        checkpoint["resume"] = self.saved  # read by tracking/runs/resume.py
