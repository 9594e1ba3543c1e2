"""Optuna pruning: stop a sweep trial whose epochs lag behind earlier trials'. The rule is
`hydra.sweeper.pruner` (any `optuna.pruners.*`; null: never prune), asked with each epoch's
`optimized_metric`: train() raises `optuna.TrialPruned`, the MLflow run ends FINISHED tagged
`pruned`/`pruned_at_epoch`, the sweeper tells Optuna PRUNED. Trials in any process reach their
Optuna trial by study name and trial number through the study's storage, read from the job's
own Hydra config (its password never travels in an override); the sweep's process reuses the
sweeper's study object.
"""

import json
import logging
import os
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna_integration import PyTorchLightningPruningCallback

from src.utils.interrupts import interrupts_deferred

log = logging.getLogger(__name__)

# Config files may only instantiate Optuna's pruners (Hydra 1.4's execution policy).
PRUNER_TARGETS = ("optuna.pruners.*",)
# The trial's pruning setting, handed from its rank 0 to the DDP ranks it starts.
PRUNING_ENV = "TRAINING_PRUNING"
# Studies this process has opened, by (storage URL, study name): the sweeper's own study
# in the basic launcher's process; in a joblib worker, the one every later trial reuses.
_studies: dict[tuple[str, str], optuna.Study] = {}


def instantiate_pruner(config: Any) -> optuna.pruners.BasePruner:
    """The configured pruner; `null` is Optuna's NopPruner, which never prunes."""
    from hydra.utils import instantiate

    if config is None:
        return optuna.pruners.NopPruner()
    return instantiate(config, _execution_whitelist_=PRUNER_TARGETS)


def share_study(storage: Any, study: optuna.Study) -> None:
    """Let trials run in this process (the basic launcher) report to `study` directly."""
    _studies[(str(storage), study.study_name)] = study


def attach_trial(
    study_name: str, trial_number: int, storage: Any, pruner_config: Any
) -> optuna.trial.Trial:
    """The running Optuna trial `trial_number` of `study_name`, from any process, its study
    loaded with the configured pruner (`should_prune()` asks it; else Optuna's default)."""
    key = (str(storage), study_name)
    opened = _studies.get(key)
    if opened is None:
        opened = optuna.load_study(
            study_name=study_name, storage=storage, pruner=instantiate_pruner(pruner_config)
        )
        _studies[key] = opened
    # A view that never samples (a new Trial asks the sampler for relative params, which in
    # the sweep's process would draw from the sweeper's seeded sampler).
    study = optuna.study.Study(
        study_name, opened._storage, sampler=optuna.samplers.RandomSampler(), pruner=opened.pruner
    )
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, trial_number)
    return optuna.trial.Trial(study, trial_id)


class TrialPruning(PyTorchLightningPruningCallback):
    """optuna-integration's Lightning pruning callback (reports `monitor` per validation; under
    DDP rank 0 decides and `check_pruned()` after fit raises in every rank, on RDB storage),
    plus `.epoch` on the raised `optuna.TrialPruned` (it survives pickling) for the run's tags."""

    def __init__(self, trial: optuna.trial.Trial, monitor: str) -> None:
        super().__init__(trial, monitor)
        self.last_epoch: int | None = None

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self.last_epoch = int(pl_module.current_epoch)
        try:
            with interrupts_deferred():  # it writes to the study's database
                super().on_validation_end(trainer, pl_module)
        except optuna.TrialPruned as pruned:
            pruned.epoch = self.last_epoch  # type: ignore[attr-defined]
            raise

    def check_pruned(self) -> None:
        if not self.is_ddp_backend:
            return  # the decision raised in on_validation_end already; spare a storage read
        try:
            with interrupts_deferred():
                super().check_pruned()
        except optuna.TrialPruned as pruned:
            pruned.epoch = self.last_epoch  # type: ignore[attr-defined]
            raise


def trial_pruning(cfg: DictConfig) -> TrialPruning | None:
    """The pruning callback of a sweep trial; None for a single run or `pruner: null`. Every
    DDP rank gets the same answer: the ranks meet in a broadcast each epoch, and a rank
    without the callback would leave the others waiting."""
    sweep = cfg.sweep
    if sweep.trial_number is None or sweep.study_name is None:
        return None  # a single run is never pruned: nothing to compare it with
    setting = _pruning_setting()
    if setting is None or setting["pruner"] is None:
        return None
    storage, study_name = setting["storage"], sweep.study_name
    if storage is None and (str(storage), study_name) not in _studies:
        log.warning(
            "Pruning is off for this trial: its process cannot reach an in-memory study "
            "(set hydra.sweeper.storage, e.g. the default sqlite:///.../logs/optuna.db)"
        )
        return None
    trial = attach_trial(study_name, int(sweep.trial_number), storage, setting["pruner"])
    if len(trial.study.directions) > 1:
        log.warning("Pruning is off for this trial: Optuna prunes single-objective studies only")
        return None
    return TrialPruning(trial, cfg.optimized_metric)


def _pruning_setting() -> dict[str, Any] | None:
    """`hydra.sweeper`'s pruner and storage, as the trial's rank 0 sees them: DDP ranks
    that Lightning starts run the job's own overrides, not the sweep's (see distributed),
    so rank 0 hands them down in the environment; srun's ranks read their own config."""
    from hydra.core.hydra_config import HydraConfig

    inherited = os.environ.get(PRUNING_ENV)
    if not _is_rank_zero() and inherited is not None:
        return json.loads(inherited)
    if not HydraConfig.initialized():
        return None
    sweeper = HydraConfig.get().sweeper
    pruner = OmegaConf.select(sweeper, "pruner", default=None)
    setting = {
        "pruner": None if pruner is None else OmegaConf.to_container(pruner, resolve=True),
        "storage": OmegaConf.select(sweeper, "storage", default=None),
    }
    if _is_rank_zero():
        os.environ[PRUNING_ENV] = json.dumps(setting)
    return setting


def _is_rank_zero() -> bool:
    """Global rank 0 (or no DDP), from the launchers' environment, before a Trainer exists."""
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        if os.environ.get(key):
            return int(os.environ[key]) == 0 and int(os.environ.get("NODE_RANK") or 0) == 0
    return int(os.environ.get("NODE_RANK") or 0) == 0
