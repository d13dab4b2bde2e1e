"""server/rest/json_reader.py and json_writer.py against rapidjson 1.1.0 with TF Serving's parse flags
(util/json_tensor.cc: ParseJson), the reference built from tests/oracle/rapidjson_oracle.cc.

A short pass: a few thousand bodies in a few oracle runs. `make fuzz` runs 100,000 and more.
"""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.rest.json_reader import parse
from server.rest.json_writer import pretty
from tests import json_bodies
from tests.json_oracle import Oracle, missing_reason

pytestmark = pytest.mark.skipif(missing_reason() is not None, reason=missing_reason() or "")


def test_fixed_bodies_read_as_rapidjson_reads_them():
    assert Oracle().compare(json_bodies.FIXED + [e.encode() for e in json_bodies.EDGE_NUMBERS]
                            + [b'{"instances":[' + e.encode() + b"]}" for e in json_bodies.EDGE_NUMBERS]) == []


def test_random_bodies_read_as_rapidjson_reads_them():
    rng = random.Random(22)
    assert Oracle().compare([json_bodies.body(rng) for _ in range(3000)]) == []


def test_random_bodies_written_as_rapidjson_writes_them():
    rng = random.Random(22)
    assert Oracle().compare([json_bodies.body(rng) for _ in range(3000)], write=True) == []


def test_random_doubles_written_as_rapidjson_writes_them():
    # Grisu2's digits: neither always the shortest (Python's repr) nor always the closest
    rng = random.Random(22)
    bodies = [json_bodies.double_body(rng) for _ in range(5000)] + [b"[0.30000000000000004]", b"[3.1801e-302]"]
    assert Oracle().compare(bodies, write=True) == []
    # 0.30000000000000004 is read exactly; 3.1801e-302 is read an ulp low (rapidjson's strtod), whose
    # shortest text is 3.1800999999999997e-302
    assert pretty(parse(b"[0.30000000000000004, 3.1801e-302]")) == (
        "[\n    0.30000000000000007,\n    3.1800999999999999e-302\n]")


@settings(max_examples=20, deadline=None)
@given(st.lists(json_bodies.bodies, min_size=50, max_size=50))
def test_property_batches_agree(batch):
    assert Oracle().compare(batch) == []


def test_oracle_sees_differences():
    # The comparison itself can fail: a reading that is not rapidjson's is reported.
    oracle = Oracle()
    assert oracle.run([b'{"a":[1],"a":[2]}'])[0].count("k61") == 2
    assert oracle.run([b"[1e400]"]) == ["E 13 1 Number too big to be stored in double."]
