"""What every Hydra entry point of this project registers before Hydra reads its config."""

from __future__ import annotations

from omegaconf import OmegaConf

from src.utils.project_paths import PROJECT_ROOT, metric_direction, stage_log_dir


def project_root() -> str:
    return str(PROJECT_ROOT)


def register_resolvers() -> None:
    """`${project_root:}`, `${stage_log_dir:model/model01}`, `${metric_direction:m,a,b}`.

    Hydra resolves its run/sweep folders and log file names through these, so outputs land
    in this project's `outputs/`, `multirun/` and `logs/` wherever the command starts.
    """
    resolvers = {
        "project_root": project_root,
        "stage_log_dir": stage_log_dir,
        "metric_direction": metric_direction,
    }
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_resolver(name, resolver)


def register_sweeper() -> None:
    """Make `hydra.sweeper._target_: src.utils.experiment_sweeper.ExperimentSweeper` known.

    Hydra instantiates only sweepers it has registered; ours lives in the project rather
    than in a `hydra_plugins` package, so it is registered by hand.
    """
    from hydra.core.plugins import Plugins

    from src.utils.experiment_sweeper import ExperimentSweeper

    Plugins.instance().register(ExperimentSweeper)


def setup_hydra(sweeper: bool = True) -> None:
    register_resolvers()
    if sweeper:
        register_sweeper()
