"""The resolvers every Hydra entry point registers before Hydra reads its config."""

from omegaconf import OmegaConf

from src.utils.paths import PROJECT_ROOT, metric_direction, stage_log_dir


def project_root() -> str:
    return str(PROJECT_ROOT)


def register_resolvers() -> None:
    """`${project_root:}`, `${stage_log_dir:model/model01}`, `${metric_direction:m,a,b}`: Hydra
    resolves its run/sweep folders and log file names through these, so outputs land in this
    project's `outputs/`, `multirun/` and `logs/` wherever the command starts."""
    resolvers = {
        "project_root": project_root,
        "stage_log_dir": stage_log_dir,
        "metric_direction": metric_direction,
    }
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_resolver(name, resolver)
