"""Stage dataset01: get MNIST into _data/data/ (download, or verify what was placed there).

python src/dataset/dataset01/make_dataset.py
python src/dataset/dataset01/make_dataset.py download=false   # offline: verify only
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from src.dataset.dataset01.mnist_dataset import make_dataset, manifest_path
from src.dataset.dataset01.mnist_files import MNISTFilesError
from src.utils.hydra_resolvers import register_resolvers
from src.utils.user_errors import report_as_message

register_resolvers()
log = logging.getLogger(__name__)


@hydra.main(config_path="../../../config/dataset/dataset01", config_name="config")
def main(cfg: DictConfig) -> None:
    with report_as_message(MNISTFilesError):
        manifest = make_dataset(Path(cfg.data_dir), download=cfg.download)
    for name, info in manifest["files"].items():
        log.info(f"{name}: {info['bytes']:,} bytes, sha256 {info['sha256'][:12]}…")
    log.info(f"Manifest written to {manifest_path(Path(cfg.data_dir))}")


if __name__ == "__main__":
    main()
