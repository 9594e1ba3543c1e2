"""Serve a run's model over REST (`mlflow models serve`) on 127.0.0.1: SELECTION is best (the
best trial, default), champion (models:/<experiment>@champion) or a run id. Other options go
to `mlflow models serve`. GET /ping; POST /invocations {"inputs": N×1×28×28 pixels in [0, 1]}
answers {"predictions": N×10 logits}.
"""

import os
import sys

from src.utils.commands.servers import common
from src.utils.paths import PROJECT_ROOT


def serve(argv: list[str]) -> None:
    options = common.parser(__doc__, port=5001, host=False)
    options.add_argument("selection", nargs="?", default="best", help="best, champion, a run id")
    options.add_argument("--experiment", default="model01")
    args, extra = options.parse_known_args(argv)
    common.require("mlflow", "MLflow", f"serve_model.sh {args.selection}")
    # `runs:/` and `models:/` resolve against the store training writes to.
    os.environ["MLFLOW_TRACKING_URI"], _ = common.mlflow_store()
    # This project's `src` for the server, which unpickles its classes (see src/__init__.py).
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])
    )
    base = common.listen("127.0.0.1", args.port, "the model server")
    from src.utils.commands.model_loading import RunNotFoundError, model_uri
    from src.utils.tracking.store.mlflow_store import TrackingServerUnreachable

    try:  # before the server starts: a wrong id or login fails in seconds, with a message
        uri = model_uri(args.experiment, args.selection)
    except (RunNotFoundError, TrackingServerUnreachable) as error:
        raise common.CommandError(str(error)) from None
    print(f"Serving {uri} on {base} (POST /invocations, GET /ping; Ctrl-C stops)", file=sys.stderr)
    common.exec_python(
        "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local",
        "-h", "127.0.0.1", "-p", str(args.port), *extra,
    )  # fmt: skip


if __name__ == "__main__":
    common.main(serve)
