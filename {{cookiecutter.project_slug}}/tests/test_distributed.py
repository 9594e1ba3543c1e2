"""Which process owns a DDP job's run, and what a rank inherits from rank 0 (no processes
started here; the template's tests run DDP on 2 CPU processes)."""

from __future__ import annotations

import json
import os

import pytest

from src.utils.training import distributed

RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK", "NODE_RANK")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (*RANK_VARIABLES, "GROUP_RANK", distributed.RUN_ID_ENV, distributed.SETTINGS_ENV):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("env", "owner"),
    [
        ({}, True),  # one process
        ({"LOCAL_RANK": "1"}, False),  # started by Lightning on this machine
        ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, False),  # the first rank of node 2
        ({"RANK": "0", "LOCAL_RANK": "0"}, True),  # torchrun
        ({"SLURM_PROCID": "3"}, False),  # a Slurm task
        ({"LOCAL_RANK": "1", "SLURM_PROCID": "0"}, False),  # Lightning inside one Slurm task
    ],
)
def test_only_global_rank_zero_owns_the_run(clean_env, env, owner):
    for name, value in env.items():
        clean_env.setenv(name, value)
    assert distributed.is_rank_zero() is owner


def test_rank_zero_hands_its_run_and_settings_over_and_leaves_no_trace(clean_env):
    settings = {"devices": 2, "num_sanity_val_steps": 0}
    with distributed.launched_ranks("abc123", settings, __file__) as used:
        assert used == settings
        assert os.environ[distributed.RUN_ID_ENV] == "abc123"
        inherited = dict(os.environ)
        os.environ["MASTER_PORT"] = "12345"  # what Lightning's launcher leaves behind
        os.environ["LOCAL_RANK"] = "0"
    assert "MASTER_PORT" not in os.environ and "LOCAL_RANK" not in os.environ
    assert distributed.RUN_ID_ENV not in os.environ

    # A rank started with that environment uses rank 0's settings, not its own.
    clean_env.setenv("LOCAL_RANK", "1")
    clean_env.setenv(distributed.SETTINGS_ENV, inherited[distributed.SETTINGS_ENV])
    clean_env.setenv(distributed.RUN_ID_ENV, "abc123")
    own = {"devices": 2, "num_sanity_val_steps": 2}
    with distributed.launched_ranks("", own, __file__) as used:
        assert used == json.loads(inherited[distributed.SETTINGS_ENV]) == settings
    assert distributed.OtherRankRun().run_id == "abc123"


def test_other_ranks_exit_quietly_on_what_every_rank_raises(clean_env):
    clean_env.setenv("LOCAL_RANK", "1")
    with pytest.raises(SystemExit) as stopped, distributed.quiet_unless_rank_zero(ValueError):
        raise ValueError("rank 0 reports this")
    assert stopped.value.code == 0
    with pytest.raises(RuntimeError), distributed.quiet_unless_rank_zero(ValueError):
        raise RuntimeError("a rank failing alone is not hidden")
