"""Helpers for the exercise checks (imported by the test_ex*.py files in this folder)."""
import os
import pathlib
import shutil
import time

import pytest


def call(function, *args, **kwargs):
    """Call a student's function; a TODO left as NotImplementedError becomes a clear check failure."""
    try:
        return function(*args, **kwargs)
    except NotImplementedError as error:
        todo = str(error)
    pytest.fail(f"{function.__name__} 还没有完成：{todo}", pytrace=False)  # outside except: no chained traceback


def publish(export_dir: pathlib.Path, base: pathlib.Path, version: int) -> pathlib.Path:
    """Copy a SavedModel into base/<version> the safe way (the checks' own helper, not the student's)."""
    temp = base / f".tmp-check-{version}-{time.monotonic_ns()}"
    shutil.copytree(export_dir, temp)
    os.rename(temp, base / str(version))
    return base / str(version)
