"""What a train.py's process gets from src/utils/entry_point.py, and what it must not get."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import run_python

from src.utils import entry_point
from src.utils.paths import PROJECT_ROOT


def run_script(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "command.py"
    script.write_text(
        "import atexit, logging, sys, threading, time\n"
        "from src.utils.entry_point import run\n" + textwrap.dedent(body)
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

        run(main)
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
    done = run_script(tmp_path, f"run(lambda: {exit_call})\n")
    assert (done.returncode, done.stderr.strip()) == (status, stderr)


def test_an_error_takes_pythons_own_path_with_its_traceback(tmp_path):
    done = run_script(
        tmp_path,
        """
        def main():
            raise ValueError("broken")

        run(main)
        """,
    )
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "ValueError: broken" in done.stderr


# train.py run as a script (its --help ends main at once); what was loaded and what
# torchmetrics believes is installed are read by an exit hook, after main.
TRAIN_SCRIPT_REPORT = """
import atexit, gc, runpy, sys

def report():
    from torchmetrics.utilities import imports
    from src.utils.entry_point import gpu_present
    seen = [imports._MATPLOTLIB_AVAILABLE, imports._SCIPY_AVAILABLE, imports._TORCHVISION_AVAILABLE]
    print("triton" in sys.modules, all(map(bool, seen)), gc.isenabled(), gpu_present())

atexit.register(report)
sys.argv = ["train.py", "--help"]
runpy.run_path("src/model/model01/train.py", run_name="__main__")
"""


def test_train_py_leaves_triton_unloaded_without_a_gpu_and_hides_nothing_else():
    last = run_python(TRAIN_SCRIPT_REPORT).stdout.splitlines()[-1]
    # torchmetrics sees matplotlib, scipy and torchvision as installed (a user's
    # Metric.plot or scipy-based metric works); collection is back on once main runs.
    # Triton (~75 MB) is not loaded without a GPU; with one it is, for torch.compile.
    gpu = last.endswith("True")
    assert last == ("True True True True" if gpu else "False True True False")


def test_importing_a_train_py_from_other_code_changes_nothing():
    code = "import gc, sys, src.model.model01.train; print(gc.isenabled(), 'triton' in sys.modules)"
    last = run_python(code).stdout.splitlines()[-1]
    assert last.startswith("True "), last  # the garbage collector was never paused
    if not entry_point.gpu_present():
        import importlib.util

        # Triton loads as Lightning asks for it: nothing was hidden from this importer.
        assert last == f"True {importlib.util.find_spec('triton') is not None}"


def test_triton_stays_importable_where_a_gpu_could_use_it(monkeypatch):
    monkeypatch.delitem(sys.modules, "triton", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert entry_point.unused_modules() == ["triton"]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert entry_point.unused_modules() == []


def test_hiding_a_module_leaves_an_imported_one_in_place():
    import json

    with entry_point.hidden_modules(["json", "a_module_never_imported"]):
        assert sys.modules["json"] is json  # mlflow.pytorch's autologging, once imported
        assert sys.modules["a_module_never_imported"] is None
    assert sys.modules["json"] is json and "a_module_never_imported" not in sys.modules
