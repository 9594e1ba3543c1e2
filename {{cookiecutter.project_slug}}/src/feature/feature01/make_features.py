"""Stage feature01: cache MNIST as model-ready tensors (builds dataset01 first if needed).

python src/feature/feature01/make_features.py
python src/feature/feature01/make_features.py binarize_threshold=128
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig, OmegaConf

from src.dataset.dataset01.mnist_files import MNISTFilesError
from src.feature.feature01.mnist_features import ensure_features
from src.utils.hydra_resolvers import register_resolvers
from src.utils.stages.config import load_stage_config
from src.utils.user_errors import report_as_message

register_resolvers()
log = logging.getLogger(__name__)


@hydra.main(config_path="../../../config/feature/feature01", config_name="config")
def main(cfg: DictConfig) -> None:
    feature_config = OmegaConf.to_container(cfg, resolve=True)
    with report_as_message(MNISTFilesError):
        features, built = ensure_features(load_stage_config("dataset", "dataset01"), feature_config)
    verb = "Built" if built else "Reused"
    log.info(
        f"{verb} {len(features.train_labels):,} training and {len(features.test_labels):,} "
        f"test images (pixel mean {features.mean:.4f}, std {features.std:.4f})"
    )


if __name__ == "__main__":
    main()
