"""The project's code: experiments in dataset/, feature/ and model/, infrastructure in utils/.

`import src` means the project of the script being run. With two projects installed
(editable) in one environment, a bare `import src` finds the one whose .pth file sorts
first; when the running script lies in another project's `src/` (train.py, make_dataset.py,
...), the package is pointed at that project's `src/` before any of its modules load, so
the runs, studies and models of a script always land in its own project. Other scripts are
checked by `src.utils.paths.check_one_project`.
"""

import sys
from pathlib import Path

_script = getattr(sys.modules.get("__main__"), "__file__", None)
if _script:
    _own = Path(__file__).resolve().parent
    for _folder in Path(_script).resolve().parents:
        if _folder.name == "src" and (_folder / "__init__.py").is_file():
            if _folder != _own:
                __path__[:] = [str(_folder)]
                sys.path.insert(0, str(_folder.parent))  # for pickles and child processes
            break
