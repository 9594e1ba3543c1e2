"""The sweeper's trial loop against a real Optuna study (sweep/sweeper.py)."""

from __future__ import annotations

from types import SimpleNamespace

import optuna

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
