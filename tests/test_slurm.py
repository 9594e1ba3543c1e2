"""Issue 21 on a real one-node Slurm cluster: a sweep with the launcher config a user types
(`hydra/launcher=submitit_slurm`), one trial's job preempted with submitit's signal
(`scancel --signal=USR2`): it is requeued, continues its epochs and the sweep ends normally."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from slurm_cluster import slurm_cluster_fixture  # noqa: F401 - the fixture

from conftest import project_env, study_name_of

pytestmark = pytest.mark.slow

SWEEP = [
    sys.executable,
    "src/model/model01/train.py",
    "-m",
    "hydra/launcher=submitit_slurm",
    "learning_rate=interval(0.0012,0.0016)",
    "hydra.sweeper.n_trials=2",
    "trainer.max_epochs=6",
    "batch_size=16",
    "trainer.limit_train_batches=15",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "callbacks.early_stopping=null",
    "mlflow.log_model=false",
    "mlflow.system_metrics=false",
]


def test_a_preempted_trial_job_is_requeued_and_continues(installed_project, slurm_cluster):
    import optuna
    import torch
    from mlflow import MlflowClient

    project = installed_project
    client = MlflowClient(f"sqlite:///{project / 'logs/mlruns/mlflow.db'}")
    log = project / "slurm-sweep.log"
    env = project_env(**slurm_cluster.env())
    with log.open("w") as out:
        sweep = subprocess.Popen(SWEEP, cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT)
    signalled = None
    try:
        deadline = time.monotonic() + 300
        while signalled is None and sweep.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
            text = log.read_text()
            if "Study name:" not in text or "#0 : " not in text:  # the store exists
                continue
            experiment = client.get_experiment_by_name("model01")
            name = study_name_of(text)
            found = client.search_runs(
                [experiment.experiment_id],
                f"tags.study_name = '{name}' and tags.trial_number = '1'",
            )
            last = found and project / "logs/lightning/model01" / found[0].info.run_id / "last.ckpt"
            if last and last.exists() and torch.load(last, weights_only=True)["epoch"] >= 1:
                job = slurm_cluster.run("squeue", "-h", "-t", "RUNNING", "-o", "%i").split()
                slurm_cluster.run("scancel", "--signal=USR2", job[0])
                signalled = job[0]
        sweep.wait(timeout=300)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    output = log.read_text()
    assert signalled, f"trial 1 was never caught mid-run:\n{output[-4000:]}"
    assert sweep.returncode == 0, output[-4000:] + slurm_cluster.logs()
    name = study_name_of(output)
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{project / 'logs/optuna.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    runs = client.search_runs(
        [client.get_experiment_by_name("model01").experiment_id],
        f"tags.study_name = '{name}' and tags.trial_number != ''",
    )
    trials = {r.data.tags["trial_number"]: r for r in runs if "trial_number" in r.data.tags}
    assert sorted(trials) == ["0", "1"]
    assert all(r.info.status == "FINISHED" for r in trials.values())
    continued = trials["1"]
    assert continued.data.tags.get("resumed") == "1", "the requeued job started its trial again"
    epochs = client.get_metric_history(continued.info.run_id, "val/acc")
    assert len(epochs) <= 7 and sorted(study.trials[1].intermediate_values) == list(range(6))
    # The console stays readable: no sacct warnings, no srun hint.
    assert "sacct" not in output and "srun` command is available" not in output
