"""The schema of model01's config: types from dataclasses, ranges checked before training.

Hydra already refuses unknown keys; this catches values of the right key but the wrong
type or range (`learning_rate=-1`, `batch_size=0`, `optimized_metric=val/f1`) with one
message that lists every problem, before any data is read or any run is created.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ValidationError

# The metrics ImageClassifier logs per epoch, which a checkpoint and Optuna can follow.
OPTIMIZABLE_METRICS = ("val/acc", "val/loss")


class ConfigError(ValueError):
    """The training config has invalid values; the message lists them and how to fix them."""


@dataclass
class ModelSchema:
    channels: int = 32
    hidden: int = 128
    dropout: float = 0.25
    weight_decay: float = 0.0


@dataclass
class DataSchema:
    val_fraction: float = 0.1
    split_seed: int = 0
    shuffle_seed: int = 0
    num_workers: int = 0
    pin_memory: bool | None = None


@dataclass
class MlflowSchema:
    tracking_uri: str | None = None
    log_model: bool = True
    tags: dict[str, Any] = field(default_factory=dict)
    system_metrics: bool = True
    system_metrics_interval: float = 5.0


@dataclass
class SweepSchema:
    study_name: str | None = None
    trial_number: int | None = None
    parent_run_id: str | None = None


@dataclass
class TrainSchema:
    experiment_name: str = "model01"
    learning_rate: float = 1e-3
    batch_size: int = 128
    seed: int = 42
    optimized_metric: str = "val/acc"
    compile: bool = False
    resume: str | None = None
    model: ModelSchema = field(default_factory=ModelSchema)
    data: DataSchema = field(default_factory=DataSchema)
    trainer: dict[str, Any] = field(default_factory=dict)
    callbacks: dict[str, Any] = field(default_factory=dict)
    mlflow: MlflowSchema = field(default_factory=MlflowSchema)
    sweep: SweepSchema = field(default_factory=SweepSchema)


def _range_problems(cfg: TrainSchema) -> list[str]:
    problems = []

    def check(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    lr = cfg.learning_rate
    check(
        math.isfinite(lr) and lr > 0,
        f"learning_rate must be a positive number, got {lr} (e.g. learning_rate=0.001)",
    )
    check(cfg.batch_size >= 1, f"batch_size must be at least 1, got {cfg.batch_size}")
    check(
        cfg.optimized_metric in OPTIMIZABLE_METRICS,
        f"optimized_metric must be one of {', '.join(OPTIMIZABLE_METRICS)}, "
        f"got {cfg.optimized_metric!r}",
    )
    check(
        0.0 < cfg.data.val_fraction < 1.0,
        f"data.val_fraction must be between 0 and 1, got {cfg.data.val_fraction}",
    )
    check(cfg.data.num_workers >= 0, f"data.num_workers must be >= 0, got {cfg.data.num_workers}")
    check(cfg.model.channels >= 1, f"model.channels must be >= 1, got {cfg.model.channels}")
    check(cfg.model.hidden >= 1, f"model.hidden must be >= 1, got {cfg.model.hidden}")
    check(
        0.0 <= cfg.model.dropout < 1.0,
        f"model.dropout must be in [0, 1), got {cfg.model.dropout}",
    )
    check(
        cfg.trainer.get("limit_val_batches", 1.0) != 0,
        "trainer.limit_val_batches=0 switches validation off, but the checkpoint and Optuna "
        f"follow {cfg.optimized_metric}, a validation metric: keep it above 0",
    )
    check(
        cfg.mlflow.system_metrics_interval > 0,
        f"mlflow.system_metrics_interval must be > 0 seconds, got "
        f"{cfg.mlflow.system_metrics_interval} (mlflow.system_metrics=false turns them off)",
    )
    check(
        cfg.model.weight_decay >= 0.0,
        f"model.weight_decay must be >= 0, got {cfg.model.weight_decay}",
    )
    return problems


def validate_train_config(cfg: DictConfig) -> TrainSchema:
    """Return the config as a typed object, or raise ConfigError listing every problem."""
    try:
        typed = OmegaConf.merge(OmegaConf.structured(TrainSchema), cfg)
    except ValidationError as error:
        raise ConfigError(f"Invalid config: {error.msg} (key: {error.full_key})") from None
    problems = _range_problems(OmegaConf.to_object(typed))
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(f"Invalid config ({len(problems)} problem(s)):\n{listed}")
    return OmegaConf.to_object(typed)
