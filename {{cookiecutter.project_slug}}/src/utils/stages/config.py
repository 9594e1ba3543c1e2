"""Read another stage's config (e.g. feature01's) from inside a running Hydra app. Hydra's
compose API cannot start inside `@hydra.main`, so the YAML is read with OmegaConf and its
`hydra:` node dropped: a caller that builds the stage on demand needs only the stage's keys."""

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.utils.hydra_resolvers import register_resolvers
from src.utils.paths import CONFIG_DIR
from src.utils.stages.manifests import file_stats

# Each file as last parsed, with its size and mtime then (the raw data files' re-hash rule):
# a sweep's trials read the same two stage configs (~2.5 ms of YAML parsing each, two cores).
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
