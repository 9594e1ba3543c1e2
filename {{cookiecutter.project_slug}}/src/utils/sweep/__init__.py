"""The Optuna sweeper that Hydra runs for `train.py -m`, with this project's trial loop."""
