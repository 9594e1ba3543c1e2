"""Train experiment model01: MNIST, a small CNN, Lightning, MLflow; Optuna sweeps with -m.

    python src/model/model01/train.py                                           # one run
    python src/model/model01/train.py -m 'learning_rate=interval(0.001,0.002)'  # a sweep

Returns the best epoch value of `optimized_metric`, which Optuna's sweeper optimises.
"""

from __future__ import annotations

from src.utils import entry_point  # first: a faster, leaner process (see there)

# isort: split
import hydra
import lightning as L
import optuna
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from src.dataset.dataset01.mnist_files import MNISTFilesError
from src.feature.feature01.mnist_datamodule import MNISTDataModule
from src.model.model01.config_schema import ConfigError, validate_train_config
from src.model.model01.evaluation import confusion_matrix_image, score_test_set
from src.model.model01.image_classifier_models import ImageClassifier
from src.utils.paths import LIGHTNING_LOGS_DIR, metric_direction
from src.utils.sweep.pruning import trial_pruning
from src.utils.sweep.sweeper import register_sweeper
from src.utils.tracking.runs.resume import DiskFull, ResumeError, resume_point
from src.utils.tracking.runs.training_run import TrainingRun
from src.utils.tracking.store.mlflow_store import TrackingServerUnreachable
from src.utils.training.checkpoint_io import LocalCheckpointIO
from src.utils.training.distributed import OtherRankRun, is_rank_zero, launched_ranks
from src.utils.training.guards import NonFiniteLossError, StopOnNonFiniteLoss
from src.utils.training.job import print_run_summary, training_job
from src.utils.training.resume import LastCheckpoint
from src.utils.training.settings import config_callbacks, trainer_settings

# What a user can fix: shown as one message, not a traceback (see user_errors);
# MisconfigurationException: e.g. trainer.accelerator=gpu on a machine without one.
USER_ERRORS = (ConfigError, ResumeError, MNISTFilesError, NonFiniteLossError)
USER_ERRORS += (DiskFull, TrackingServerUnreachable, MisconfigurationException)


@hydra.main(config_path="../../../config/model/model01", config_name="config")
def main(cfg: DictConfig) -> float | optuna.TrialPruned:
    with training_job(*USER_ERRORS):
        try:
            return train(cfg)
        except optuna.TrialPruned as pruned:
            # The sweeper's result for a pruned trial (raised, Hydra would call it failed).
            return pruned


def train(cfg: DictConfig) -> float:
    cfg, resume = resume_point(cfg)  # resume=<run id>, or a sweep's interrupted trial
    validate_train_config(cfg)  # wrong values stop here, before any data or run exists
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    # Builds dataset01 and feature01 first when their outputs are missing or stale.
    datamodule = MNISTDataModule(batch_size=cfg.batch_size, **cfg.data)
    features = datamodule.features()
    pixels = {"pixel_mean": features.mean, "pixel_std": features.std}  # the training set's
    model = ImageClassifier(learning_rate=cfg.learning_rate, **pixels, **cfg.model)
    if cfg.compile:
        model.net.compile()  # in place, so checkpoints keep the plain module's keys

    # A DDP job is one MLflow run, rank 0's; the other ranks train and log nothing.
    kind = type(model.net).__name__
    tracked = TrainingRun(cfg, __file__, kind, resume) if is_rank_zero() else OtherRankRun()
    with (
        tracked as run,
        launched_ranks(run.run_id, trainer_settings(cfg), __file__) as settings,
    ):
        run.log_data_versions(datamodule.dataset_config, features)
        folder = LIGHTNING_LOGS_DIR / cfg.experiment_name / run.run_id  # best and last.ckpt
        mode = metric_direction(cfg.optimized_metric, "min", "max")
        checkpoint = ModelCheckpoint(folder, "best", monitor=cfg.optimized_metric, mode=mode)
        # A sweep trial reports optimized_metric each epoch; the pruner may stop it there
        # (optuna.TrialPruned: the run ends FINISHED, tagged pruned, without the steps below).
        pruning = trial_pruning(cfg)
        callbacks = [checkpoint, LastCheckpoint(folder, cfg, resume), StopOnNonFiniteLoss()]
        callbacks += [*config_callbacks(cfg), *([pruning] if pruning else [])]
        trainer = L.Trainer(
            **settings, logger=run.logger, callbacks=callbacks, plugins=[LocalCheckpointIO()]
        )
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume and resume.checkpoint)
        if pruning is not None:
            pruning.check_pruned()  # under DDP the ranks learn the decision after fit
        if checkpoint.best_model_score is None:
            no_best = f"{cfg.optimized_metric} was never logged, so there is no best epoch"
            raise ConfigError(f"{no_best}: keep trainer.limit_val_batches above 0")

        # The best epoch's weights, tested once over feature01's cached test tensors
        # (memory-mapped: the optimizer's state in the checkpoint is never read).
        best = torch.load(checkpoint.best_model_path, "cpu", weights_only=True, mmap=True)
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
    print_run_summary(cfg, run, metrics)
    return float(checkpoint.best_model_score)


if __name__ == "__main__":
    register_sweeper()  # `-m` sweeps through the project's Optuna sweeper
    entry_point.run(main)
