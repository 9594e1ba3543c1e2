from conftest import compose_train_config
from omegaconf import OmegaConf

from src.utils.paths import PROJECT_ROOT


def test_config_composes_with_the_optuna_sweeper_and_project_folders():
    cfg = compose_train_config()
    assert cfg.experiment_name == "model01"
    assert cfg.optimized_metric == "val/acc"
    assert cfg.hydra.sweeper._target_ == "src.utils.sweep.sweeper.ExperimentSweeper"
    assert cfg.hydra.sweeper.direction == "maximize"
    assert cfg.hydra.sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert cfg.hydra.sweeper.storage == f"sqlite:///{PROJECT_ROOT}/logs/optuna.db"
    assert cfg.hydra.run.dir.startswith(f"{PROJECT_ROOT}/outputs/model01/")
    assert cfg.hydra.sweep.dir.startswith(f"{PROJECT_ROOT}/multirun/model01/")
    assert cfg.data.val_fraction == 0.1


def test_stage_configs_point_into_the_project():
    from src.utils.stages.config import load_stage_config

    dataset = load_stage_config("dataset", "dataset01")
    feature = load_stage_config("feature", "feature01")
    assert dataset.data_dir == f"{PROJECT_ROOT}/_data/data" and dataset.download is True
    assert feature.output_dir == f"{PROJECT_ROOT}/_data/feature/feature01"
    assert "hydra" not in feature
    assert (
        load_stage_config("feature", "feature01", binarize_threshold=128).binarize_threshold == 128
    )


def test_a_stage_config_is_parsed_once_until_its_file_changes(tmp_path, monkeypatch):
    from src.utils.stages import config as stage_config

    folder = tmp_path / "feature" / "feature01"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("threshold: 1\nhydra:\n  run:\n    dir: x\n")
    monkeypatch.setattr(stage_config, "CONFIG_DIR", tmp_path)
    parsed = []
    load = OmegaConf.load
    monkeypatch.setattr(OmegaConf, "load", lambda path: parsed.append(path) or load(path))

    first = stage_config.load_stage_config("feature", "feature01")
    first.threshold = 5  # a caller's change stays in its copy
    assert stage_config.load_stage_config("feature", "feature01").threshold == 1
    assert len(parsed) == 1 and "hydra" not in first
    (folder / "config.yaml").write_text("threshold: 22\n")  # another size and mtime
    assert stage_config.load_stage_config("feature", "feature01").threshold == 22
    assert len(parsed) == 2


def test_trainer_node_takes_command_line_overrides():
    cfg = compose_train_config(
        ["trainer.max_epochs=1", "trainer.limit_train_batches=5", "trainer.accelerator=cpu"]
    )
    assert cfg.trainer.max_epochs == 1
    assert cfg.trainer.limit_train_batches == 5
    assert cfg.trainer.accelerator == "cpu"


def test_loss_metric_flips_every_direction_to_minimise():
    cfg = compose_train_config(["optimized_metric=val/loss"])
    assert cfg.hydra.sweeper.direction == "minimize"
    assert cfg.callbacks.early_stopping.mode == "min"
    container = OmegaConf.to_container(cfg.callbacks, resolve=True)
    assert container["early_stopping"]["monitor"] == "val/loss"
