"""The Optuna sweeper that Hydra runs for `train.py -m`, with this project's trial loop and the
sweep's parent run; shared by all experiments, so normally left alone."""
