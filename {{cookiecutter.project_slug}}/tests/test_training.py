from pathlib import Path

import lightning as L
import torch
from conftest import run_python

from src.feature.feature01.mnist_datamodule import MNISTDataModule
from src.model.model01.evaluation import confusion_matrix, predict, score_test_set
from src.model.model01.image_classifier_models import ImageClassifier


def tiny_mnist(stage_configs: tuple[dict, dict], batch_size: int) -> MNISTDataModule:
    return MNISTDataModule(
        batch_size, dataset_config=stage_configs[0], feature_config=stage_configs[1]
    )


def quiet_trainer(**settings: object) -> L.Trainer:
    """A CPU trainer that logs, prints and saves nothing but what the test asks for."""
    return L.Trainer(
        logger=False,
        enable_progress_bar=False,
        accelerator="cpu",
        enable_model_summary=False,
        enable_checkpointing=False,
        **settings,
    )


def scored(model: ImageClassifier, datamodule: MNISTDataModule, limit: int | float = 1.0):
    datamodule.setup("test")
    images, labels = datamodule.test_set.tensors
    return score_test_set(model.net, images, labels, datamodule.batch_size, limit)


def test_fast_dev_run_trains_validates_and_tests(stage_configs):
    datamodule = tiny_mnist(stage_configs, 16)
    model = ImageClassifier(learning_rate=1e-3)
    trainer = quiet_trainer(fast_dev_run=True)
    trainer.fit(model, datamodule=datamodule)
    assert {"train/loss", "val/loss", "val/acc"} <= set(trainer.logged_metrics)
    metrics, _counts = scored(model, datamodule)
    assert 0.0 <= metrics["test/acc"] <= 1.0 and metrics["test/loss"] > 0


def test_checkpoint_reload_gives_the_same_predictions(stage_configs, tmp_path: Path):
    L.seed_everything(0, verbose=False)
    datamodule = tiny_mnist(stage_configs, 64)
    model = ImageClassifier(learning_rate=2e-3, channels=8, hidden=32)
    trainer = quiet_trainer(max_epochs=1)
    trainer.fit(model, datamodule=datamodule)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)

    reloaded = ImageClassifier.load_from_checkpoint(path).eval()
    assert reloaded.hparams.channels == 8 and reloaded.hparams.learning_rate == 2e-3
    images = datamodule.val_set.tensors[0][:50]
    model.eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(images), model(images))
        assert torch.equal(reloaded(images).argmax(1), model(images).argmax(1))


def test_the_network_learns_the_fixture_digits(stage_configs):
    """The synthetic digits are learnable: the model beats chance (10 %) clearly."""
    L.seed_everything(0, verbose=False)
    datamodule = tiny_mnist(stage_configs, 32)
    model = ImageClassifier(learning_rate=2e-3)
    trainer = quiet_trainer(max_epochs=3)
    trainer.fit(model, datamodule=datamodule)
    assert scored(model, datamodule)[0]["test/acc"] > 0.5


def test_the_test_pass_agrees_with_lightning_and_honours_the_batch_limit(stage_configs):
    datamodule = tiny_mnist(stage_configs, 64)
    model = ImageClassifier(learning_rate=1e-3, channels=8, hidden=16)
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=2)
    trainer.fit(model, datamodule=datamodule)

    metrics, counts = scored(model, datamodule)
    assert int(counts.sum()) == len(datamodule.test_set)
    assert torch.equal(counts, confusion_matrix(*predict(model.net, datamodule.test_dataloader())))
    # The same loss as Lightning's own evaluation loop gives over the same images.
    lightning_loss = trainer.validate(
        model, dataloaders=datamodule.test_dataloader(), verbose=False
    )
    assert abs(lightning_loss[0]["val/loss"] - metrics["test/loss"]) < 1e-4
    assert abs(lightning_loss[0]["val/acc"] - metrics["test/acc"]) < 1e-6

    assert int(scored(model, datamodule, limit=2)[1].sum()) == 2 * 64
    assert int(scored(model, datamodule, limit=0.5)[1].sum()) == 2 * 64  # 4 batches of 200


def test_a_run_shorter_than_log_every_n_steps_still_logs_a_training_curve(
    stage_configs, tmp_path: Path
):
    """3 steps per epoch against the config's log_every_n_steps=50: no per-step value is
    sent, but every epoch's mean reaches MLflow."""
    from lightning.pytorch.loggers import MLFlowLogger
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    logger = MLFlowLogger(
        experiment_name="short_run",
        tracking_uri=uri,
        artifact_location=(tmp_path / "artifacts").as_uri(),
    )
    trainer = L.Trainer(
        logger=logger,
        log_every_n_steps=50,
        max_epochs=2,
        limit_train_batches=3,
        limit_val_batches=1,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(ImageClassifier(channels=8, hidden=16), datamodule=tiny_mnist(stage_configs, 16))
    client = MlflowClient(uri)
    epochs = client.get_metric_history(logger.run_id, "train/loss_epoch")
    assert len(epochs) == 2 and epochs[0].step < epochs[1].step
    assert all(m.value > 0 for m in epochs)
    assert client.get_metric_history(logger.run_id, "train/loss") == []


CALLBACK_FACTORY_TRAINERS = """
import lightning as L
from lightning.fabric.utilities import registry

from src.utils.training.settings import read_callback_entry_points_once
from callback_factory import made

read_callback_entry_points_once()
quiet = dict(logger=False, enable_progress_bar=False, enable_model_summary=False)
trainers = [L.Trainer(**quiet) for _ in range(3)]
own = [[c for c in t.callbacks if type(c).__name__ == "Counted"] for t in trainers]
print(len(made), len({id(c) for cs in own for c in cs}), registry.entry_points.cache_info().misses)
"""


def test_callback_entry_points_are_read_once_and_each_trainer_gets_its_own(tmp_path):
    # An installed package that registers a callback factory, as Lightning plugins do.
    (tmp_path / "callback_factory.py").write_text(
        "import lightning as L\n"
        "made = []\n"
        "class Counted(L.Callback):\n"
        "    pass\n"
        "def make():\n"
        "    made.append(Counted())\n"
        "    return made[-1]\n"
    )
    info = tmp_path / "callback_factory-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: callback-factory\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[lightning.pytorch.callbacks_factory]\ncounted = callback_factory:make\n"
    )
    done = run_python(CALLBACK_FACTORY_TRAINERS, extra_path=tmp_path)
    # Three Trainers: three callbacks of their own, one lookup of the entry points.
    assert done.stdout.split() == ["3", "3", "1"]
