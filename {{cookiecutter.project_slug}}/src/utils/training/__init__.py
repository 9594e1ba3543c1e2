"""Lightning callbacks that every experiment's train.py adds to its Trainer."""
