"""Read another stage's config (e.g. feature01's) from inside a running Hydra app.

Hydra's compose API cannot start inside `@hydra.main`, so the stage's YAML is read with
OmegaConf and its `hydra:` node (run folders, logging) dropped: only the stage's own keys
matter to a caller that builds the stage on demand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.utils.hydra_resolvers import register_resolvers
from src.utils.paths import CONFIG_DIR
from src.utils.stages.manifests import file_stats

# Each file as last parsed, by path, with its size and mtime then (the rule the raw data
# files are re-hashed by): a sweep's trials read the same two stage configs (~2.5 ms of
# YAML parsing each, two CPU cores).
_PARSED: dict[Path, tuple[list[int], DictConfig]] = {}


def load_stage_config(stage: str, name: str, **overrides: Any) -> DictConfig:
    """config/<stage>/<name>/config.yaml without its hydra node, resolved, with overrides."""
    register_resolvers()
    path = CONFIG_DIR / stage / name / "config.yaml"
    try:
        version = file_stats([path])[path.name]
    except FileNotFoundError:
        raise FileNotFoundError(
            f"No config for stage {stage}/{name}: {path} does not exist"
        ) from None
    cached = _PARSED.get(path)
    if cached is None or cached[0] != version:
        parsed = OmegaConf.load(path)
        for key in ("hydra", "defaults"):
            parsed.pop(key, None)
        _PARSED[path] = cached = (version, parsed)
    # A merged copy: callers may change theirs, never the parsed file.
    config = OmegaConf.merge(cached[1], overrides)
    OmegaConf.resolve(config)
    return config
