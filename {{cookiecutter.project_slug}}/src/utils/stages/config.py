"""Read another stage's config (e.g. feature01's) from inside a running Hydra app.

Hydra's compose API cannot start inside `@hydra.main`, so the stage's YAML is read with
OmegaConf and its `hydra:` node (run folders, logging) dropped: only the stage's own keys
matter to a caller that builds the stage on demand.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.utils.hydra_resolvers import register_resolvers
from src.utils.paths import CONFIG_DIR


def load_stage_config(stage: str, name: str, **overrides: Any) -> DictConfig:
    """config/<stage>/<name>/config.yaml without its hydra node, resolved, with overrides."""
    register_resolvers()
    path = CONFIG_DIR / stage / name / "config.yaml"
    if not path.exists():
        raise FileNotFoundError(f"No config for stage {stage}/{name}: {path} does not exist")
    config = OmegaConf.load(path)
    for key in ("hydra", "defaults"):
        config.pop(key, None)
    config = OmegaConf.merge(config, overrides)
    OmegaConf.resolve(config)
    return config
