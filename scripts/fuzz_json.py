"""`make fuzz`, JSON part: at least 100,000 request bodies read by rapidjson 1.1.0 with TF Serving's
flags (the oracle `make rapidjson-oracle` builds) and by server/rest/json_reader.py; with --write, also
written back by rapidjson's PrettyWriter and json_writer.pretty; with --doubles N, also N random doubles
written by rapidjson's Writer::Double (Grisu2) and json_writer.rapidjson_double. Prints the count and every distinct
mismatch (one example each, with how many bodies showed it); exits 1 if there is any.
"""
from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import json_bodies  # noqa: E402
from tests.json_oracle import Oracle, missing_reason  # noqa: E402


def kind(diff: str) -> str:
    """What makes two mismatches the same: the difference, without the body and its numbers."""
    what = diff.split(" bytes): ", 1)[-1]
    return re.sub(r"\d+", "N", what.split(":", 1)[0] + ":" + re.sub(r"b'.*", "", what.split(":", 1)[-1]))[:200]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bodies", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--write", action="store_true", help="also compare the written text")
    parser.add_argument("--doubles", type=int, default=0, help="random doubles written by both writers")
    args = parser.parse_args(argv)
    reason = missing_reason()
    if reason:
        print(reason)
        return 1
    rng = random.Random(args.seed)
    oracle = Oracle()
    started = time.monotonic()
    done = 0
    seen: Counter = Counter()
    examples: dict[str, str] = {}
    batch = list(json_bodies.FIXED) if args.bodies else []
    total = args.bodies + args.doubles
    while done < total:
        if done < args.bodies:
            batch += [json_bodies.body(rng) for _ in range(min(args.batch, args.bodies - done) - len(batch))]
        else:
            batch += [json_bodies.double_body(rng) for _ in range(min(args.batch, total - done) - len(batch))]
        for diff in oracle.compare(batch, write=args.write or done >= args.bodies):
            k = kind(diff)
            seen[k] += 1
            examples.setdefault(k, diff)
        done += len(batch)
        batch = []
        print(f"{done} bodies, {sum(seen.values())} mismatches", flush=True)
    print(f"\nJSON differential pass (seed {args.seed}): {done} bodies ({args.doubles} of them random doubles) "
          f"in {time.monotonic() - started:.0f} s, "
          f"{sum(seen.values())} mismatches, {len(seen)} distinct")
    for k, n in seen.most_common():
        print(f"  {n} x {examples[k][:400]}")
    return 1 if seen else 0


if __name__ == "__main__":
    sys.exit(main())
