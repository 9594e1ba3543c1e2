"""Train experiment model01: MNIST, a small CNN, Lightning, MLflow; Optuna sweeps with -m.

    python src/model/model01/train.py                                           # one run
    python src/model/model01/train.py -m 'learning_rate=interval(0.001,0.002)'  # a sweep

Returns the best epoch value of `optimized_metric`, which Optuna's sweeper optimises.
"""

from __future__ import annotations

import atexit
import gc

# Importing torch, Lightning, MLflow and Hydra allocates objects that live as long as the
# process, and the cyclic garbage collector would walk them again and again while they
# load: about a fifth of the start-up on two cores (the template's benchmarks/run.py).
# Paused until they are loaded, then frozen out of every later collection.
gc.disable()

import sys
from pathlib import Path

# This project's `src` first, whatever else is installed: with two projects installed
# (editable) in one environment, `import src` would find the one whose .pth sorts first.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from src.utils.lean_imports import without_unused_extras

with without_unused_extras():  # ~75 MB less per process (see lean_imports)
    import lightning as L

import hydra
import optuna
import torch
from hydra.utils import instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from src.dataset.dataset01.mnist_files import MNISTFilesError
from src.feature.feature01.mnist_datamodule import MNISTDataModule
from src.model.model01.config_schema import ConfigError, validate_train_config
from src.model.model01.evaluation import confusion_matrix_image, score_test_set
from src.model.model01.image_classifier_models import ImageClassifier
from src.utils.console import quiet_third_party_noise
from src.utils.hydra_resolvers import register_resolvers
from src.utils.interrupts import sigterm_as_interrupt
from src.utils.paths import LIGHTNING_LOGS_DIR, PROJECT_ROOT, metric_direction
from src.utils.process_exit import exit_when_done
from src.utils.sweep.pruning import trial_pruning
from src.utils.sweep.sweeper import register_sweeper
from src.utils.tracking.run import TrainingRun
from src.utils.tracking.store import TrackingServerUnreachable
from src.utils.training.checkpoint_io import LocalCheckpointIO
from src.utils.training.distributed import (
    OtherRankRun,
    is_rank_zero,
    launched_ranks,
    quiet_unless_rank_zero,
)
from src.utils.training.guards import NonFiniteLossError, StopOnNonFiniteLoss
from src.utils.training.settings import trainer_settings
from src.utils.user_errors import report_as_message

register_resolvers()
register_sweeper()
gc.freeze()
gc.enable()
# Config files may only instantiate Lightning's callbacks (Hydra 1.4's execution policy).
CALLBACK_TARGETS = ("lightning.pytorch.callbacks.*",)
# Mistakes a user can fix: shown as one message, not a traceback (see user_errors).
USER_ERRORS = (
    ConfigError,
    MNISTFilesError,
    NonFiniteLossError,
    TrackingServerUnreachable,
    MisconfigurationException,  # e.g. trainer.accelerator=gpu on a machine without one
)


@hydra.main(config_path="../../../config/model/model01", config_name="config")
def main(cfg: DictConfig) -> float | optuna.TrialPruned:
    quiet_third_party_noise()
    with (
        report_as_message(*USER_ERRORS),
        sigterm_as_interrupt(),
        quiet_unless_rank_zero(*USER_ERRORS),
    ):
        try:
            return train(cfg)
        except optuna.TrialPruned as pruned:
            # Handed to the sweeper as the job's result, which tells Optuna PRUNED: raised,
            # Hydra would log it as "Job failed" with a traceback. Only sweep trials prune.
            return pruned


def train(cfg: DictConfig) -> float:
    validate_train_config(cfg)  # wrong values stop here, before any data or run exists
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    # Builds dataset01 and feature01 first when their outputs are missing or stale.
    datamodule = MNISTDataModule(batch_size=cfg.batch_size, **cfg.data)
    features = datamodule.features()
    model = ImageClassifier(
        learning_rate=cfg.learning_rate,
        pixel_mean=features.mean,
        pixel_std=features.std,
        **cfg.model,
    )
    if cfg.compile:
        model.net.compile()  # in place, so checkpoints keep the plain module's keys

    entry_point = Path(__file__).resolve().relative_to(PROJECT_ROOT).as_posix()
    kind = type(model.net).__name__
    # A DDP job is one MLflow run, rank 0's; the other ranks train and log nothing.
    if is_rank_zero():
        tracked = TrainingRun(cfg, entry_point=entry_point, model_kind=kind)
    else:
        tracked = OtherRankRun()
    with (
        tracked as run,
        launched_ranks(run.run_id, trainer_settings(cfg), __file__) as settings,
    ):
        run.log_data_versions(datamodule.dataset_config, features)
        checkpoint = ModelCheckpoint(
            dirpath=LIGHTNING_LOGS_DIR / cfg.experiment_name / run.run_id,
            filename="best",
            monitor=cfg.optimized_metric,
            mode=metric_direction(cfg.optimized_metric, "min", "max"),
        )
        extra = [
            instantiate(c, _execution_whitelist_=CALLBACK_TARGETS)
            for c in cfg.callbacks.values()
            if c
        ]
        # A sweep trial reports optimized_metric each epoch; the pruner may stop it there
        # (optuna.TrialPruned: the run ends FINISHED, tagged pruned, without the steps below).
        pruning = trial_pruning(cfg)
        callbacks = [checkpoint, StopOnNonFiniteLoss(), *extra, *filter(None, [pruning])]
        trainer = L.Trainer(
            **settings, logger=run.logger, callbacks=callbacks, plugins=[LocalCheckpointIO()]
        )
        trainer.fit(model, datamodule=datamodule)
        if pruning is not None:
            pruning.check_pruned()  # under DDP the ranks learn the decision after fit
        if checkpoint.best_model_score is None:
            raise ConfigError(
                f"{cfg.optimized_metric} was never logged, so there is no best epoch: "
                "keep trainer.limit_val_batches above 0"
            )

        # The best epoch's weights, tested once over feature01's cached test tensors
        # (memory-mapped: the optimizer's state in the checkpoint is never read).
        best = torch.load(
            checkpoint.best_model_path, map_location="cpu", weights_only=True, mmap=True
        )
        model.load_state_dict(best["state_dict"])
        datamodule.setup("test")
        net = model.net.to(trainer.strategy.root_device)
        metrics, counts = score_test_set(
            net, *datamodule.test_set.tensors, cfg.batch_size, cfg.trainer.limit_test_batches
        )
        run.log_metrics(metrics, step=trainer.global_step)
        run.log_file(checkpoint.best_model_path, "checkpoints")
        run.log_image(confusion_matrix_image(counts, run.run_name), "plots/confusion_matrix.png")
        if cfg.mlflow.log_model:
            logged = net
            if cfg.compile:  # MLflow pickles the model: log a plain copy of the compiled net
                logged = ImageClassifier(**best["hyper_parameters"]).net
                logged.load_state_dict(net.state_dict())
            run.log_pytorch_model(logged.cpu(), input_example=datamodule.test_set.tensors[0][:4])
    return float(checkpoint.best_model_score)


if __name__ == "__main__":
    # When main() returns everything is logged and closed: the process ends without
    # Python's teardown of torch, Lightning and MLflow (see process_exit). Should an error
    # end it the usual way, the frozen objects spare it the final garbage collection.
    atexit.register(gc.freeze)  # registered first, so it runs after every other exit hook
    exit_when_done(main)
