"""The chapter's exercises: every check passes on its reference solution and fails, helpfully, on its starter.

Two pytest runs in subprocesses, as a student runs them (`make exercises` = `pytest -m exercise exercises`):
one on the starters (the default), one with EXERCISE_DIR=exercises/solutions. Each run trains its MLP
and starts its shared server once; the starter checks fail before they need the server.
"""
import os
import pathlib
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

# exercise -> a phrase the starter's failure message must contain (the hint that tells the student what to do)
EXERCISES = {
    "ex1_columnar": 'build_request 仍在用行格式（键 "instances"）',
    "ex2_hot_update": "publish_version 还没有完成",
    "ex3_metadata": "describe_inputs 还没有完成",
    "ex4_second_signature": "导出的 SavedModel 里没有签名 predict_digit",
    "ex5_classify_regress": 'regress_request 用了 predict 的格式',
    "ex6_batching_latency": "write_batching_parameters 还没有完成",
    "ex7_cors": "browser_allows 还没有完成",
    "ex8_grpc": "build_request 还没有完成",
}

pytestmark = pytest.mark.slow


def run_checks(junit: pathlib.Path, exercise_dir: str | None) -> dict[str, tuple[str, str]]:
    env = dict(os.environ)
    env.pop("EXERCISE_DIR", None)
    if exercise_dir:
        env["EXERCISE_DIR"] = exercise_dir
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "exercise", "exercises", "-q",
                           "-p", "no:cacheprovider", f"--junitxml={junit}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=540)
    if not junit.is_file():
        pytest.fail(f"pytest wrote no report (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    results = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            element = case.find(kind)
            if element is not None:
                outcome, message = kind, (element.get("message") or "") + "\n" + (element.text or "")
        results[f"{case.get('classname')}::{case.get('name')}"] = (outcome, message)
    return {"returncode": proc.returncode, "results": results, "output": proc.stdout[-4000:]}


@pytest.fixture(scope="module")
def solutions(tmp_path_factory):
    return run_checks(tmp_path_factory.mktemp("ex") / "solutions.xml", "exercises/solutions")


@pytest.fixture(scope="module")
def starters(tmp_path_factory):
    return run_checks(tmp_path_factory.mktemp("ex") / "starters.xml", None)


def result_for(run, exercise):
    matches = [v for k, v in run["results"].items() if k.endswith(f"test_{exercise}::test_{exercise}")]
    assert len(matches) == 1, f"expected one check for {exercise}, found {sorted(run['results'])}\n{run['output']}"
    return matches[0]


def test_every_exercise_has_starter_solution_and_check():
    for exercise in EXERCISES:
        for path in (f"exercises/{exercise}.py", f"exercises/solutions/{exercise}.py", f"exercises/test_{exercise}.py"):
            assert (ROOT / path).is_file(), path
    checks = sorted(p.stem[len("test_"):] for p in (ROOT / "exercises").glob("test_ex*.py"))
    assert checks == sorted(EXERCISES)


def test_solutions_run_passes(solutions):
    assert solutions["returncode"] == 0, solutions["output"]
    assert len(solutions["results"]) == len(EXERCISES), solutions["output"]


@pytest.mark.parametrize("exercise", EXERCISES)
def test_check_passes_on_solution(solutions, exercise):
    outcome, message = result_for(solutions, exercise)
    assert outcome == "passed", message


@pytest.mark.parametrize("exercise", EXERCISES)
def test_check_fails_on_starter_with_a_hint(starters, exercise):
    assert starters["returncode"] == 1, starters["output"]  # 1: tests failed (not a usage or collection error)
    outcome, message = result_for(starters, exercise)
    assert outcome == "failure", f"{exercise}: {outcome}\n{message}"
    assert EXERCISES[exercise] in message, message
    assert "Traceback" not in message and "During handling" not in message, message


def test_docs_page_shows_every_exercise():
    text = (ROOT / "docs" / "exercises.rst").read_text()
    assert "\n习题\n====" in text  # the page's top-level title
    assert "make exercises" in text and "EXERCISE_DIR=exercises/solutions" in text
    for number, exercise in enumerate(EXERCISES, 1):
        assert f"习题 {number}：" in text, exercise
        assert f"../exercises/{exercise}.py" in text, f"docs/exercises.rst does not include the starter of {exercise}"
