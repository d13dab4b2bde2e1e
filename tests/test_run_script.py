"""scripts/run.py: `make`'s targets without make (the way the chapter tells Windows readers to run them)."""
import importlib.util
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("run_script", ROOT / "scripts" / "run.py")
run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run)


def test_venv_python_per_platform():
    venv = pathlib.Path("repo") / ".venv"
    assert run.venv_python(venv, windows=True) == venv / "Scripts" / "python.exe"
    assert run.venv_python(venv, windows=False) == venv / "bin" / "python"


def test_tasks_run_what_the_makefile_runs():
    makefile = (ROOT / "Makefile").read_text()
    py = pathlib.Path(".venv/bin/python")
    expected = {
        "demo": "$(PY) scripts/demo.py",
        "test": "$(PY) -m pytest",
        "html": "$(PY) -m sphinx -W -n --keep-going -b html -c . docs _build/html",
        "exercises": "$(PY) -m pytest -m exercise exercises",
    }
    assert "$(VENV)/bin/ruff check ." in makefile  # make test runs lint first; so does run.py test
    assert run.task_commands("test", py, [])[0] == [str(py), "-m", "ruff", "check", "."]
    for task, make_line in expected.items():
        assert make_line in makefile, make_line
        command = run.task_commands(task, py, [])[-1]
        shown = " ".join(command).replace(str(py), "$(PY)").replace(str(ROOT / "scripts" / "demo.py"),
                                                                      "scripts/demo.py")
        assert shown == make_line
    assert run.task_commands("setup", py, []) == []
    assert run.task_commands("test", py, ["tests/test_client.py", "-x"])[-1][-2:] == ["tests/test_client.py", "-x"]


def test_help_lists_the_tasks():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "run.py"), "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0
    for task in ("setup", "demo", "test", "html", "exercises"):
        assert task in done.stdout
