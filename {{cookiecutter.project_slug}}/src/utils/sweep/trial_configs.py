"""A sweep trial's config, composed by Hydra once and then only re-valued.

Hydra composes every trial's config from the files again: ~60 ms per trial on two cores,
a tenth of a one-batch trial (benchmarks/run.py). Trials differ only in the values of the
searched and `sweep.*` keys, so later trials are the first one's config with those values
set as Hydra sets them; any other change (a config group option, a key added or deleted)
is composed in full.
"""

import copy
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf


class TrialConfigs:
    """Hydra's config loader, whose `load_sweep_config` re-values a composed config."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader
        self._parser = OverridesParser.create()
        # The last config Hydra composed in full, untouched, and the overrides it had.
        self._composed: tuple[list[Override], DictConfig] | None = None
        self.reused = 0  # trials whose config was re-valued (a test reads it)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> Any:
        parsed = self._parser.parse_overrides(list(sweep_overrides))
        if self._composed is not None:
            changed = _changed_values(*self._composed, parsed)
            if changed is not None:
                self.reused += 1
                return _revalued(self._composed[1], changed, parsed, master_config)
        config = self._loader.load_sweep_config(master_config, list(sweep_overrides))
        self._composed = (parsed, copy.deepcopy(config))
        return config


def compose_trials_once(launcher: Any) -> TrialConfigs:
    """Give `launcher` (Hydra's basic launcher) a `TrialConfigs` loader; return it."""
    context = launcher.hydra_context
    loader = context.config_loader
    if not isinstance(loader, TrialConfigs):
        loader = TrialConfigs(loader)
        launcher.hydra_context = HydraContext(
            config_loader=loader,
            callbacks=context.callbacks,
            execution_whitelist=context.execution_whitelist,
        )
    return loader


def _changed_values(
    previous: list[Override], composed: DictConfig, parsed: list[Override]
) -> list[Override] | None:
    """The overrides that only set another value of a plain key; None: compose in full."""
    if len(parsed) != len(previous):
        return None
    keys = [o.key_or_group for o in parsed]
    if len(set(keys)) != len(keys):
        return None  # a key given twice: Hydra decides which one wins
    choices = composed.hydra.runtime.choices
    changed = []
    for new, old in zip(parsed, previous, strict=True):
        if new.input_line == old.input_line:
            continue
        key = new.key_or_group
        plain = (
            key == old.key_or_group
            and new.type == old.type == OverrideType.CHANGE
            and new.package is None
            and not new.is_sweep_override()
            and not new.is_hydra_override()
            and key not in choices  # a config group: another option loads other files
            and _is_plain_value(composed, key)
        )
        if not plain or any(
            k != key and (k.startswith(f"{key}.") or key.startswith(f"{k}.")) for k in keys
        ):
            return None
        changed.append(new)
    return changed


_ABSENT = object()


def _is_plain_value(config: DictConfig, key: str) -> bool:
    """`key` holds a value, not a dict or list (a new one would be merged into the old)."""
    value = OmegaConf.select(config, key, default=_ABSENT, throw_on_resolution_failure=False)
    return value is not _ABSENT and value is not None and not OmegaConf.is_config(value)


def _revalued(
    composed: DictConfig, changed: list[Override], parsed: list[Override], master: DictConfig
) -> DictConfig:
    config = copy.deepcopy(composed)
    # Sets each value exactly as Hydra's composition does after loading the files.
    ConfigLoaderImpl._apply_overrides_to_config(changed, config)
    config.hydra.overrides.task = [o.input_line for o in parsed if not o.is_hydra_override()]
    OmegaConf.copy_cache(from_config=master, to_config=config)
    return config
