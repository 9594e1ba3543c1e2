"""Stop a run early when it can no longer produce anything useful, and say why."""

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
        value = loss.detach().float().item() if isinstance(loss, torch.Tensor) else 0.0
        # Decided by all ranks together under DDP (one rank's NaN stops every rank at this
        # step; alone, a rank would wait for the others forever); a no-op on one device.
        if trainer.strategy.reduce_boolean_decision(not math.isfinite(value), all=False):
            lr = pl_module.hparams.get("learning_rate")
            where = value if not math.isfinite(value) else "non-finite on another rank"
            raise NonFiniteLossError(
                f"train/loss became {where} at step {trainer.global_step} "
                f"(learning_rate={lr}): the run diverged; try a smaller learning_rate"
            )
