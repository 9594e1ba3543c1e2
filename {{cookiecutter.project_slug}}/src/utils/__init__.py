"""The project's infrastructure; the ML code lives in src/dataset, src/feature, src/model.

Dependencies point one way: experiments -> tracking, sweep, training -> the shared basics.

- `paths`, `user_errors`, `console`, `interrupts`, `hydra_resolvers`, `lean_imports`,
  `process_exit`: shared basics that every entry point uses (where things live,
  one-message errors, quiet logs, Ctrl-C/SIGTERM, Hydra's `${project_root:}` resolvers, a
  lighter Lightning import, an exit without the interpreter's teardown).
- `stages/`: what the dataset, feature and model stages share (another stage's config,
  output manifests).
- `training/`: what every train.py uses around Lightning: callbacks (guards that stop a
  hopeless run) and DDP (one run and one trial however many processes train it).
- `tracking/`: MLflow (the store, a training run, a sweep's parent run, the registry,
  stale runs, environment capture).
- `sweep/`: the Optuna sweeper Hydra runs for `-m`, and its trial loop.
- `commands/`: what a user runs (`python -m src.utils.commands.<name>`, scripts/*.sh,
  the notebooks): diary, export_runs, new_experiment, reproduce, model_loading.
"""
