"""Pruning a sweep's trials: the configured pruner, the trial re-attached through the
study's storage, the Lightning callback that stops it, and the MLflow run it leaves."""

from __future__ import annotations

import optuna
import pytest
from conftest import compose_train_config
from mlflow import MlflowClient
from omegaconf import OmegaConf, open_dict
from test_training import quiet_trainer, tiny_mnist

from src.model.model01.image_classifier_models import ImageClassifier
from src.utils.sweep.pruning import TrialPruning, attach_trial, instantiate_pruner
from src.utils.tracking.runs.training_run import TrainingRun

# A pruner that prunes every trial once its warm-up epoch is over: no accuracy reaches 2.
ALWAYS_PRUNE = {"_target_": "optuna.pruners.ThresholdPruner", "lower": 2.0, "n_warmup_steps": 1}


def test_the_default_pruner_waits_for_finished_trials_and_a_first_epoch():
    pruner_config = compose_train_config().hydra.sweeper.pruner
    pruner = instantiate_pruner(pruner_config)
    assert isinstance(pruner, optuna.pruners.PercentilePruner)
    assert pruner_config.n_startup_trials >= 3 and pruner_config.n_warmup_steps >= 1
    off = compose_train_config(["hydra.sweeper.pruner=null"]).hydra.sweeper.pruner
    assert isinstance(instantiate_pruner(off), optuna.pruners.NopPruner)
    for name, pruner_class in (
        ("median", optuna.pruners.MedianPruner),
        ("successive_halving", optuna.pruners.SuccessiveHalvingPruner),
        ("hyperband", optuna.pruners.HyperbandPruner),
    ):
        chosen = compose_train_config([f"hydra/sweeper/pruner={name}"]).hydra.sweeper.pruner
        assert isinstance(instantiate_pruner(chosen), pruner_class)


def test_a_pruner_config_cannot_run_other_code():
    with pytest.raises(Exception, match="execution|whitelist|allowed"):
        instantiate_pruner(OmegaConf.create({"_target_": "os.system", "command": "true"}))


def test_a_trial_re_attached_by_number_is_pruned_after_its_warm_up_epoch(stage_configs, tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    asked = [study.ask() for _ in range(2)]
    # Another process would see only the storage, the study name and the trial number.
    trial = attach_trial("s", asked[1].number, storage, OmegaConf.create(ALWAYS_PRUNE))
    pruning = TrialPruning(trial, "val/acc")
    trainer = quiet_trainer(max_epochs=3, limit_train_batches=2, callbacks=[pruning])
    with pytest.raises(optuna.TrialPruned) as pruned:
        trainer.fit(ImageClassifier(learning_rate=1e-3), datamodule=tiny_mnist(stage_configs, 32))
    assert pruned.value.epoch == 1 and trainer.current_epoch == 1
    reported = study.trials[1].intermediate_values
    assert sorted(reported) == [0, 1] and study.trials[0].intermediate_values == {}


def test_a_pruned_run_ends_finished_with_its_metrics_and_pruned_tags(tracking_uri):
    cfg = compose_train_config()
    with open_dict(cfg):
        del cfg["hydra"]
    run = TrainingRun(cfg, entry_point="src/model/model01/train.py", model_kind="test")
    with pytest.raises(optuna.TrialPruned), run:
        run.client.log_metric(run.run_id, "val/acc", 0.1, step=0)
        pruned = optuna.TrialPruned("Trial was pruned at epoch 0.")
        pruned.epoch = 0
        raise pruned
    logged = MlflowClient(tracking_uri).get_run(run.run_id)
    assert logged.info.status == "FINISHED" and "error" not in logged.data.tags
    assert logged.data.tags["pruned"] == "true" and logged.data.tags["pruned_at_epoch"] == "0"
    assert logged.data.metrics["val/acc"] == 0.1
