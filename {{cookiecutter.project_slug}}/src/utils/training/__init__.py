"""What every experiment's train.py uses around Lightning: how a job ends, callbacks, settings,
DDP, checkpoints; shared by all experiments, so normally left alone."""
