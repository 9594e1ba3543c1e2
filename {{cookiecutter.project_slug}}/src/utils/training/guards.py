"""Stop a run early when it can no longer produce anything useful, and say why."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; more steps cannot recover it."""


class StopOnNonFiniteLoss(L.Callback):
    """Fail the run at the first non-finite training loss (checked every `every_n_steps`).

    A diverged trial otherwise trains to the end on NaNs and reports a meaningless
    metric to Optuna. Checking every step would cost one device sync per step on a GPU.
    """

    def __init__(self, every_n_steps: int = 1) -> None:
        self.every_n_steps = max(1, every_n_steps)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        if trainer.global_step % self.every_n_steps:
            return
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and not math.isfinite(loss.detach().float().item()):
            lr = pl_module.hparams.get("learning_rate")
            raise NonFiniteLossError(
                f"train/loss became {loss.item()} at step {trainer.global_step} "
                f"(learning_rate={lr}): the run diverged; try a smaller learning_rate"
            )
