"""The sweeper's trial loop against a real Optuna study (sweep/sweeper.py)."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest
from hydra.errors import ConfigCompositionException

from src.utils.sweep.sweeper import _ExperimentSweeperImpl


def test_a_trial_asked_beyond_n_trials_by_a_racing_worker_is_failed_and_not_run():
    study = optuna.create_study(direction="maximize")
    first = study.ask()
    # Two workers counted 1 of 2 trials at the same moment; both asked for the last one.
    theirs, mine = study.ask(), study.ask()
    sweeper = SimpleNamespace(n_trials=2)
    kept = _ExperimentSweeperImpl._without_surplus(sweeper, study, [mine])
    assert kept == []
    assert study.trials[mine.number].state == optuna.trial.TrialState.FAIL
    assert "surplus" in study.trials[mine.number].user_attrs
    # The other worker's trial, with the lower number, is kept.
    assert _ExperimentSweeperImpl._without_surplus(sweeper, study, [theirs]) == [theirs]
    assert first.number < theirs.number < mine.number


def test_a_trials_fixed_params_and_owner_are_stored_in_one_transaction(tmp_path, monkeypatch):
    from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl
    from optuna.distributions import FloatDistribution

    from src.utils.tracking.runs.tags import owner_tags

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(storage=storage, direction="maximize")
    trial = study.ask()
    commits = []
    monkeypatch.setattr(
        optuna.storages.RDBStorage,
        "set_trial_user_attr",
        lambda *args, **kwargs: commits.append(args),  # Optuna's one-per-attribute write
    )
    sweeper = _ExperimentSweeperImpl.__new__(_ExperimentSweeperImpl)
    sweeper.study_name, sweeper.parent_run_id = "s", "p"
    sweeper.custom_search_space_extender = None
    space = {"learning_rate": FloatDistribution(0.001, 0.002)}
    fixed = {"trainer.max_epochs": 1, "model.hidden": 64}
    (overrides,) = sweeper._configure_trials([trial], space, fixed, ["seed=3"])
    assert commits == []
    stored = optuna.load_study(study_name=study.study_name, storage=storage).trials[0]
    assert stored.user_attrs == {**fixed, **owner_tags()} == trial.user_attrs
    # The overrides Hydra's sweeper would give the job, in its order, then the sweep's keys.
    (hydra_order,) = OptunaSweeperImpl._configure_trials(
        sweeper, [optuna.create_study().ask()], space, fixed, ["seed=3"]
    )
    assert [o.split("=")[0] for o in overrides[:4]] == [o.split("=")[0] for o in hydra_order]
    assert overrides[1:4] == ("trainer.max_epochs=1", "model.hidden=64", "seed=3")
    assert overrides[4:] == ("sweep.study_name=s", "sweep.trial_number=0", "sweep.parent_run_id=p")


def test_a_trial_config_re_valued_equals_the_one_hydra_composes_in_full():
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from src.utils.hydra_resolvers import register_resolvers
    from src.utils.paths import CONFIG_DIR
    from src.utils.sweep.sweeper import register_sweeper
    from src.utils.sweep.trial_configs import TrialConfigs

    register_resolvers()
    register_sweeper()

    def trial(number: int, rate: float, *extra: str) -> list[str]:
        return [
            f"learning_rate={rate}",
            f"model.dropout={0.1 * number}",
            "trainer.max_epochs=1",
            "sweep.study_name=model01-abc",
            f"sweep.trial_number={number}",
            *extra,
        ]

    with initialize_config_dir(config_dir=str(CONFIG_DIR / "model" / "model01")):
        hydra_loader = GlobalHydra.instance().config_loader()
        master = hydra_loader.load_configuration(
            "config", ["trainer.max_epochs=1"], run_mode=RunMode.MULTIRUN
        )
        ours = TrialConfigs(hydra_loader)
        trials = [
            trial(0, 0.001),
            trial(1, 0.0015),
            trial(2, 2),  # an int where the first trial had a float
            trial(3, 0.002, "+extra=1"),  # adds a key: Hydra composes it in full
            trial(4, 0.003, "hydra/job_logging=stdout"),  # a config group option
            trial(5, 0.004, "hydra/job_logging=stdout"),  # the same option, re-valued
        ]
        for overrides in trials:
            expected = hydra_loader.load_sweep_config(master, overrides)
            got = ours.load_sweep_config(master, overrides)
            assert OmegaConf.to_container(got) == OmegaConf.to_container(expected), overrides
            assert got.learning_rate == expected.learning_rate
            assert type(got.learning_rate) is type(expected.learning_rate)
            assert list(got.hydra.overrides.task) == list(expected.hydra.overrides.task)
            # Struct mode and the schema's types hold as in Hydra's config.
            assert OmegaConf.is_struct(got)
        # Trials 1, 2 and 5 re-valued; 0, 3 and 4 composed in full (first; added key; group).
        assert ours.reused == 3
        # A key the config lacks fails as Hydra fails it, naming the key.
        with pytest.raises(ConfigCompositionException, match="not_a_key"):
            ours.load_sweep_config(master, trial(6, 0.005, "not_a_key=1"))


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_the_optimization_history_shows_each_completed_trial_and_the_best_so_far(direction):
    from src.utils.sweep.history_plot import optimization_history_image

    study = optuna.create_study(direction=direction)
    for value in (0.5, 0.7, 0.6, 0.9):
        study.add_trial(optuna.trial.create_trial(value=value, params={}, distributions={}))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED))
    image = optimization_history_image(study, "val/acc")
    assert image.size == (640, 420)
    colours = {colour for _, colour in image.getcolors(maxcolors=1 << 16)}
    assert (31, 119, 180) in colours and (214, 39, 40) in colours  # the points, the best line

    def blue_columns() -> list[int]:
        pixels = image.load()
        return sorted(
            {
                x
                for x in range(image.width)
                for y in range(image.height)
                if pixels[x, y] == (31, 119, 180)
            }
        )

    columns = blue_columns()
    # Four points (the legend's marker is the fifth group), left to right by trial number.
    groups = [c for i, c in enumerate(columns) if i == 0 or c - columns[i - 1] > 1]
    assert len(groups) == 5

    # All values equal: still a plot, not a division by zero.
    flat = optuna.create_study()
    flat.add_trial(optuna.trial.create_trial(value=1.0, params={}, distributions={}))
    assert optimization_history_image(flat).size == (640, 420)
    with pytest.raises(ValueError, match="no completed trial"):
        optimization_history_image(optuna.create_study())
