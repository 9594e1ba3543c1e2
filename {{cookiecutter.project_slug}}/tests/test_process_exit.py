"""A finished command ends as Python would end it, less the teardown (process_exit.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from src.utils.paths import PROJECT_ROOT


def run_script(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "command.py"
    script.write_text(
        "import atexit, logging, sys, threading, time\n"
        "from src.utils.process_exit import exit_when_done\n" + textwrap.dedent(body)
    )
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=PROJECT_ROOT,
        env={"PYTHONPATH": str(PROJECT_ROOT), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_logs_atexit_functions_threads_and_output_are_all_finished(tmp_path):
    log_file = tmp_path / "run.log"
    done = run_script(
        tmp_path,
        f"""
        from concurrent.futures import ThreadPoolExecutor

        logging.basicConfig(filename={str(log_file)!r}, level=logging.INFO)
        POOL = ThreadPoolExecutor(1)

        def main():
            atexit.register(lambda: print("atexit ran"))
            worker = threading.Thread(target=lambda: (time.sleep(0.5), print("thread done")))
            worker.start()
            # An executor alive and never shut down (joblib's pool in a sweep): Python stops
            # its workers at exit, and so must we, or we would wait for them for ever.
            POOL.submit(time.sleep, 0.1)
            logging.info("logged last")
            sys.stdout.write("unflushed output")

        exit_when_done(main)
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["unflushed outputthread done", "atexit ran"]
    assert "logged last" in log_file.read_text()  # the file handler was flushed and closed


@pytest.mark.parametrize(
    ("exit_call", "status", "stderr"),
    [("sys.exit()", 0, ""), ("sys.exit(3)", 3, ""), ("sys.exit('bad input')", 1, "bad input")],
)
def test_sys_exit_gives_the_same_status_and_message_as_python(tmp_path, exit_call, status, stderr):
    done = run_script(tmp_path, f"exit_when_done(lambda: {exit_call})\n")
    assert (done.returncode, done.stderr.strip()) == (status, stderr)


def test_an_error_takes_pythons_own_path_with_its_traceback(tmp_path):
    done = run_script(
        tmp_path,
        """
        def main():
            raise ValueError("broken")

        exit_when_done(main)
        """,
    )
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "ValueError: broken" in done.stderr
