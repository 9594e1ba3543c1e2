"""The team server's users, as its admin (.env: MLFLOW_AUTH_ADMIN_USERNAME, _PASSWORD):
`add alice`, `password alice` (read from the terminal or standard input, never the command
line), `grant alice EDIT --experiment model01` (created if missing) or `--model NAME`.
Server: --url, else MLFLOW_TRACKING_URI, else this machine's MLFLOW_SERVER_PORT.
"""

import argparse
import getpass
import os
import sys
import warnings
from pathlib import Path

from src.utils.commands.servers import common
from src.utils.commands.servers.mlflow_server import PERMISSIONS


def manage(argv: list[str]) -> None:
    options = argparse.ArgumentParser(
        Path(sys.argv[0]).stem, description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    options.add_argument("action", choices=("add", "password", "grant"))
    options.add_argument("user")
    options.add_argument("permission", nargs="?", choices=PERMISSIONS)
    for name in ("--experiment", "--model", "--url"):
        options.add_argument(name)
    options.add_argument("--env-file", type=Path)
    args = options.parse_args(argv)
    if args.action == "grant" and (not args.permission or not (args.experiment or args.model)):
        options.error("grant needs a permission and --experiment NAME or --model NAME")
    common.require("mlflow", "MLflow", "mlflow_users.sh")
    common.load_env_file(args.env_file)
    env = os.environ
    url = (
        args.url
        or env.get("MLFLOW_TRACKING_URI")
        or f"http://127.0.0.1:{env.get('MLFLOW_SERVER_PORT', 5000)}"
    )
    if env.get("MLFLOW_AUTH_ADMIN_PASSWORD"):
        env["MLFLOW_TRACKING_USERNAME"] = env.get("MLFLOW_AUTH_ADMIN_USERNAME") or "admin"
        env["MLFLOW_TRACKING_PASSWORD"] = env["MLFLOW_AUTH_ADMIN_PASSWORD"]
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    with warnings.catch_warnings():  # mlflow.server's own imports warn of their deprecations
        warnings.simplefilter("ignore")
        from mlflow.server import get_app_client

    from src.utils.tracking.store.mlflow_store import TrackingServerUnreachable, check_server

    try:
        check_server(url)  # seconds, not the minutes of MLflow's retries; the admin's login
        users = get_app_client("basic-auth", tracking_uri=url)
        if args.action == "grant" and args.experiment:
            client = MlflowClient(url)
            found = client.get_experiment_by_name(args.experiment)
            key = found.experiment_id if found else client.create_experiment(args.experiment)
            users.grant_user_permission(args.user, "experiment", key, args.permission)
        elif args.action == "grant":
            users.grant_user_permission(args.user, "registered_model", args.model, args.permission)
        else:
            prompt = f"{'new ' * (args.action == 'password')}password for {args.user}: "
            password = getpass.getpass(prompt) if sys.stdin.isatty() else sys.stdin.readline()
            update = users.create_user if args.action == "add" else users.update_user_password
            update(args.user, password.rstrip("\r\n"))
    except (MlflowException, TrackingServerUnreachable) as error:
        raise common.CommandError(getattr(error, "message", str(error))) from None
    common.say(f"{args.action} {args.user}: done on {url}")


if __name__ == "__main__":
    common.main(manage)
