"""Hydra's Optuna sweeper, plus what a sweep of this project needs around it.

On top of the stock `hydra-optuna-sweeper` it:
- names the study `<experiment>-<hash of the search space>`, so re-running the same sweep
  resumes its study and a different search space starts a new one;
- counts `n_trials` in total: a re-run only runs the trials still missing;
- reseeds the sampler by the number of trials already in the study, so a resumed sweep
  does not propose its first points again;
- opens one MLflow parent run per sweep invocation (`sweep-<study>`), tells every trial its
  number, study and parent through the `sweep.*` config keys, and logs the study's summary
  and plots to the parent at the end.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.utils import instantiate
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

FINISHED_STATES = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def search_space_id(arguments: Sequence[str]) -> str:
    """Eight hex digits that identify the searched parameters and their ranges."""
    distributions, _fixed, _ = create_params_from_overrides(list(arguments))
    text = ";".join(f"{name}={distributions[name]!r}" for name in sorted(distributions))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def finished_trials(study_name: str, storage: str | None) -> int:
    if storage is None:
        return 0
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return 0
    return len(study.get_trials(deepcopy=False, states=FINISHED_STATES))


def _instantiate_sampler(sampler_config: Any) -> Any:
    return instantiate(
        sampler_config,
        _execution_whitelist_=("hydra_plugins.hydra_optuna_sweeper.*", "optuna.samplers.*"),
    )


class _ExperimentSweeperImpl(OptunaSweeperImpl):
    def __init__(self, sampler_config: Any, *args: Any) -> None:
        super().__init__(_instantiate_sampler(sampler_config), *args)
        self.sampler_config = sampler_config
        self.parent_run_id: str | None = None

    def _configure_trials(
        self, trials: list[optuna.trial.Trial], *args: Any
    ) -> Sequence[Sequence[str]]:
        overrides = super()._configure_trials(trials, *args)
        extra = []
        for trial in trials:
            extra.append(
                (
                    f"sweep.study_name={self.study_name}",
                    f"sweep.trial_number={trial.number}",
                    f"sweep.parent_run_id={self.parent_run_id}",
                )
            )
        return [tuple(o) + e for o, e in zip(overrides, extra, strict=True)]

    def sweep(self, arguments: list[str]) -> None:
        self._process_searchspace_config()
        space = self._parse_sweeper_params_config() + list(arguments)
        experiment = self.config.experiment_name
        if self.study_name is None:
            self.study_name = f"{experiment}-{search_space_id(space)}"
        done = finished_trials(self.study_name, self.storage)
        total = self.n_trials
        self.n_trials = max(0, total - done)
        if done:
            log.info(
                f"Resuming study {self.study_name}: {done} of {total} trials finished, "
                f"{self.n_trials} to run"
            )
            seed = OmegaConf.select(self.sampler_config, "seed")
            if seed is not None:
                reseeded = OmegaConf.merge(self.sampler_config, {"seed": int(seed) + done})
                self.sampler = _instantiate_sampler(reseeded)
        if self.n_trials == 0:
            log.info(
                f"Nothing to run: raise hydra.sweeper.n_trials above {total} to add trials, "
                "or change the search space to start a new study"
            )

        from src.utils.console_noise import quiet_third_party_noise
        from src.utils.sweep_tracking import SweepParentRun

        quiet_third_party_noise()
        # The launcher creates the sweep folder; with nothing to launch the stock sweeper
        # would fail writing optimization_results.yaml into a folder that does not exist.
        Path(self.config.hydra.sweep.dir).mkdir(parents=True, exist_ok=True)

        with SweepParentRun(self.config, self.study_name, arguments) as parent:
            self.parent_run_id = parent.run_id
            super().sweep(arguments)
            study = optuna.load_study(study_name=self.study_name, storage=self.storage)
            parent.log_study_summary(study)
            parent.register_champion(study, experiment, self.config.optimized_metric)


class ExperimentSweeper(OptunaSweeper):
    """Drop-in replacement for `hydra_plugins...OptunaSweeper` (same config keys)."""

    def __init__(
        self,
        sampler: Any,
        direction: Any,
        storage: Any | None,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        custom_search_space: str | None,
        params: DictConfig | None,
    ) -> None:
        self.sweeper = _ExperimentSweeperImpl(
            sampler,
            direction,
            storage,
            study_name,
            n_trials,
            n_jobs,
            max_failure_rate,
            custom_search_space,
            params,
        )
