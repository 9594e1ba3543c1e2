"""Keep a sweep's console readable: only messages that repeat per trial and tell a user nothing
actionable are silenced (each entry says why); the log files still get them at their level."""

import logging
import os
import warnings

# (message regex, why it is safe to hide)
_IGNORED_WARNINGS = (
    (r".*does not have many workers.*", "in-memory tensors load fastest with num_workers=0"),
    (
        r".*The number of training batches .* is smaller than the logging interval.*",
        "tiny smoke runs only; train/loss is still logged at the end of each epoch's steps",
    ),
    (r".*Checkpoint directory .* exists and is not empty.*", "each run has its own folder"),
    (r".*`isinstance\(treespec, LeafSpec\)` is deprecated.*", "internal to Lightning/torch"),
)

# Loggers whose INFO lines repeat per trial: GPU/TPU availability, tips, seed notices, MLflow's
# "Started monitoring...". MLflow imports the `pytorch_lightning` package too, under that name.
_QUIET_LOGGERS = """
    lightning.pytorch.utilities.rank_zero lightning.pytorch.accelerators.cuda
    lightning.fabric.utilities.rank_zero lightning.fabric.utilities.seed
    pytorch_lightning.utilities.rank_zero pytorch_lightning.accelerators.cuda
    lightning_fabric.utilities.rank_zero lightning_fabric.utilities.seed
    alembic mlflow.system_metrics.system_metrics_monitor
""".split()


class _DropMessage(logging.Filter):
    def __init__(self, start: str) -> None:
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.start)


def quiet_third_party_noise(sweep: bool = False) -> None:
    from optuna.exceptions import ExperimentalWarning

    # Optuna's matplotlib plots are "experimental" since v2.2; the sweep summary uses them.
    warnings.filterwarnings("ignore", category=ExperimentalWarning)
    for pattern, _why in _IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    if sweep or "SLURM_JOB_ID" not in os.environ:
        # Where Slurm is installed Lightning tells every run to prepend srun: noise outside a
        # job (a login node, a workstation) and for a sweep's in-process trials, one process
        # each. In a plain job a multi-task run without srun would hang: there it may help.
        warnings.filterwarnings("ignore", message="The `srun` command is available on your")
    # The model is pickled on purpose (TrainingRun.log_pytorch_model); MLflow warns every trial.
    mlflow_pytorch = logging.getLogger("mlflow.pytorch")
    if not any(isinstance(f, _DropMessage) for f in mlflow_pytorch.filters):
        mlflow_pytorch.addFilter(_DropMessage("Saving pytorch model by Pickle"))
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
