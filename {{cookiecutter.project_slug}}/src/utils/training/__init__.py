"""What every experiment's train.py adds to its Trainer: callbacks, settings, DDP, checkpoints."""
