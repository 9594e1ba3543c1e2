"""Open the MLflow UI on the store training writes to, from any directory.

bash scripts/mlflow_ui.sh                      # http://127.0.0.1:5000
bash scripts/mlflow_ui.sh --port 5001          # anything else goes to `mlflow server`
bash scripts/mlflow_ui.sh --host 0.0.0.0       # reachable from other machines (warns)"""

import contextlib
import json
import os
import socket
import sqlite3
import urllib.parse
from pathlib import Path

from src.utils.commands.servers import common
from src.utils.paths import MLRUNS_DIR, is_minimized

# Each link opens MLflow's own "shared view" of the experiment's run table (an experiment
# tag, as the UI's Share button saves it): the UI takes columns only from a saved view.
VIEW_TAG = "mlflow.sharedViewState.best-runs"
SET_TAG = "INSERT OR REPLACE INTO experiment_tags (key, value, experiment_id) VALUES (?,?,?)"
OF_RUNS = (
    "JOIN runs r ON r.run_uuid = x.run_uuid "
    "WHERE r.experiment_id = ? AND r.lifecycle_stage = 'active'"
)
EXPERIMENTS = (
    "SELECT e.experiment_id, e.name, COUNT(r.run_uuid) FROM experiments e "
    "JOIN runs r ON r.experiment_id = e.experiment_id AND r.lifecycle_stage = 'active' "
    "WHERE e.lifecycle_stage = 'active' GROUP BY e.experiment_id, e.name ORDER BY e.name"
)


def run_table_view(connection: sqlite3.Connection, experiment_id: int) -> dict:
    """Sorted by the optimized metric; the scores and the searched parameters as columns."""

    def keys(sql: str) -> list[str]:
        return [key for (key,) in connection.execute(sql.format(OF_RUNS), (experiment_id,))]

    optimized = "SELECT x.value FROM params x {} AND x.key = 'optimized_metric'"
    metric = (keys(optimized + " ORDER BY r.start_time DESC LIMIT 1") or ["val/acc"])[0]
    logged = keys("SELECT DISTINCT x.key FROM latest_metrics x {} ORDER BY x.key")
    # Scores and the training loss's epoch mean, not a sweep's bookkeeping (n_trials); a
    # sweep's parent run records its search space's best point as best.<name>.
    metrics = [metric, *(k for k in logged if k.startswith(("val/", "test/", "train/loss_e")))]
    best = keys("SELECT DISTINCT x.key FROM params x {} AND x.key LIKE 'best.%' ORDER BY x.key")
    return {
        "orderByKey": f"metrics.`{metric}`",
        "orderByAsc": is_minimized(metric),
        "selectedColumns": [f"metrics.`{k}`" for k in dict.fromkeys(metrics)]
        + [f"params.`{k.removeprefix('best.')}`" for k in best],
    }


def print_experiment_links(db: Path, base: str) -> None:
    """A link per experiment to its run table ("Model training", not MLflow 3's GenAI
    overview), with the view saved where the store may be written."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
            rows = connection.execute(EXPERIMENTS).fetchall()
            views = {row[0]: run_table_view(connection, row[0]) for row in rows}
    except sqlite3.Error:
        return  # a store MLflow has yet to migrate: the server will say what is wrong
    try:
        with sqlite3.connect(f"file:{db}?mode=rw", uri=True, timeout=10) as store:
            store.executemany(SET_TAG, [(VIEW_TAG, json.dumps(v), i) for i, v in views.items()])
        saved = True
    except sqlite3.Error as error:  # a store this user may only read: the links only sort
        common.say(f"  (run-table columns not saved: {error}; the links only sort)")
        saved = False
    for i, name, n_runs in rows:
        order = {k: json.dumps(v).strip('"') for k, v in views[i].items() if k.startswith("order")}
        view = "viewStateShareKey=best-runs" if saved else urllib.parse.urlencode(order)
        url = f"{base}/#/experiments/{i}/runs?workflowType=machine_learning&{view}"
        common.say(f"  {name} ({n_runs} runs): {url}")


def allowed_hosts(host: str, port: int, extra: list[str]) -> list[str]:
    """This machine's names as --allowed-hosts and CORS origins, unless given (MLflow's
    default, localhost and private addresses, refuses the names that users type)."""
    names = {socket.gethostname(), socket.getfqdn(), host} - {"0.0.0.0", "::"}
    with contextlib.suppress(OSError):
        names |= {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    names = ["localhost", "127.0.0.1", *sorted(names - {"localhost", "127.0.0.1"})]
    options = {
        "--allowed-hosts": ",".join(f"{n},{n}:{port}" for n in names),
        "--cors-allowed-origins": ",".join(f"http://{n}:{port}" for n in names),
    }
    return [f"{k}={v}" for k, v in options.items() if not any(a.startswith(k) for a in extra)]


def serve(argv: list[str]) -> None:
    args, extra = common.parser(__doc__, port=5000).parse_known_args(argv)
    common.require("mlflow", "MLflow", "mlflow_ui.sh")
    uri, db = common.mlflow_store()
    if uri.startswith(("http://", "https://", "databricks")):
        common.say(
            f"MLFLOW_TRACKING_URI={uri} is a tracking server: open it in a browser, it has its "
            "own UI. Unset MLFLOW_TRACKING_URI to browse this project's logs/mlruns instead."
        )
        return
    base = common.listen(args.host, args.port, "the UI", "read and delete runs")
    common.say(f"MLflow UI: {base}  (Ctrl-C stops it)\n  experiments: {base}/#/experiments")
    if db is not None:
        from src.utils.tracking.store.stale_runs import kill_dead_runs_in_file

        kill_dead_runs_in_file(db)  # runs a killed process left RUNNING: KILLED, and how to go on
        print_experiment_links(db, base)
    os.environ["MLFLOW_BACKEND_STORE_URI"] = uri  # not argv, where `ps` shows a DB password
    # One worker: it answers in seconds where MLflow's default four take ~18 s on two cores.
    common.exec_python(
        "-m", "mlflow", "server", "--default-artifact-root", (MLRUNS_DIR / "artifacts").as_uri(),
        "--host", args.host, "--port", str(args.port), "--workers", "1",
        *(allowed_hosts(args.host, args.port, extra) * (args.host not in common.LOOPBACK)), *extra,
    )  # fmt: skip


if __name__ == "__main__":
    common.main(serve)
