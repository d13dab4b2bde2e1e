"""`make fuzz`: the long fuzzing pass over the REST API, against real server processes on loopback.

1. schemathesis generates requests from docs/openapi.yaml (rounds with fresh seeds until at least
   --requests test cases) and checks every answer against the description: never a 5xx, a documented
   status code, Content-Type and body schema.
2. The hypothesis properties of tests/test_fuzz_rest.py run with --examples examples each (hostile
   numbers, nesting, encodings, wrong types at every position of a request).
Prints the number of requests sent, of failures and of distinct problems; exits 1 if any.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import TESTDATA  # noqa: E402
from tests.test_openapi import MODEL, fuzz_server, run_schemathesis  # noqa: E402


def schemathesis_rounds(target: int, per_round_s: int, work: pathlib.Path) -> tuple[int, int, list]:
    requests = failures = 0
    problems: list = []
    with fuzz_server(TESTDATA, work) as server:
        server.wait_available(MODEL, every_version=True)
        seed = 1
        while requests < target:
            doc = run_schemathesis(server.url, work / f"report-{seed}.json", "--max-examples", "1000",
                                   "--seed", str(seed), "--max-time", str(per_round_s),
                                   timeout=per_round_s + 120)
            cases = doc["test_cases"]
            requests += cases["generated"]
            failures += cases["with_failures"] + cases["errored"]
            for f in doc["failures"] + doc["errors"]:
                key = (f.get("code") or f.get("title") or str(f), tuple(f.get("operations", ())))
                if key not in problems:
                    problems.append(key)
            if doc["failures"] or doc["errors"]:
                print(doc["output"][-8000:])
            print(f"schemathesis round {seed}: {cases['generated']} requests, "
                  f"{cases['with_failures']} failed, {cases['errored']} errored (total {requests})", flush=True)
            seed += 1
    return requests, failures, problems


def hypothesis_pass(examples: int, work: pathlib.Path) -> tuple[int, int]:
    stats, junit = work / "hypothesis.json", work / "hypothesis.xml"
    env = dict(os.environ, FUZZ_EXAMPLES=str(examples), FUZZ_STATS=str(stats))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_fuzz_rest.py",
                           "-W", "ignore::hypothesis.errors.HypothesisWarning", f"--junitxml={junit}"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    print(proc.stdout[-6000:], proc.stderr[-2000:])
    sent = json.loads(stats.read_text())["requests"] if stats.exists() else 0
    import xml.etree.ElementTree as ET
    suite = ET.parse(junit).getroot().find("testsuite") if junit.exists() else None
    failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0)) if suite is not None else 1
    return sent, failed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000, help="schemathesis test cases, at least")
    parser.add_argument("--round-seconds", type=int, default=300, help="time budget of one schemathesis round")
    parser.add_argument("--examples", type=int, default=2000, help="hypothesis examples per property")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        work = pathlib.Path(tmp)
        st_requests, st_failures, problems = schemathesis_rounds(args.requests, args.round_seconds, work)
        hy_requests, hy_failures = hypothesis_pass(args.examples, work)
    print(f"\nfuzzing done in {time.monotonic() - started:.0f} s")
    print(f"  schemathesis (docs/openapi.yaml): {st_requests} requests, {st_failures} failures, "
          f"{len(problems)} distinct problems")
    for code, ops in problems:
        print(f"    {code}: {', '.join(ops)}")
    print(f"  hypothesis (tests/test_fuzz_rest.py): {hy_requests} requests, {hy_failures} failing properties")
    print(f"  total: {st_requests + hy_requests} requests, {st_failures + hy_failures} failures, "
          f"{len(problems) + hy_failures} distinct problems")
    return 1 if st_failures or hy_failures else 0


if __name__ == "__main__":
    sys.exit(main())
