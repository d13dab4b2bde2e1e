"""Property-based fuzzing of the REST API over loopback: no input reaches a Python exception.

Hypothesis builds request bodies and paths from hostile parts (integers of thousands of digits,
numbers beyond double range, deep nesting, invalid UTF-8, lone surrogates, other encodings, wrong
JSON types) at every position of a request (instances, inputs, signature_name, examples, context,
b64, versions, labels) and sends them to a real `python -m server`. Every answer must be TF Serving's
error document `{ "error": "..." }` with a 4xx status, or a 200 with the answer's key; the server's
log must hold no traceback. Valid requests (a property of their own) must answer 200 with y = x/2 + 2.

`make test` runs a short, derandomised pass; FUZZ_EXAMPLES=N (as `make fuzz` sets) runs N examples
per property with fresh random seeds.
"""
from __future__ import annotations

import json
import os
import pathlib

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serverproc import ServerProcess

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0"))
SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES or 60,
    derandomize=not FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)

MODEL = "hp2"
CONFIG = """model_config_list {
  config {
    name: "hp2"
    base_path: "%s"
    model_platform: "tensorflow"
    model_version_policy { all {} }
    version_labels { key: "stable" value: 123 }
    version_labels { key: "canary" value: 124 }
  }
}
"""


@pytest.fixture(scope="module")
def server(testdata, tmp_path_factory):
    config = tmp_path_factory.mktemp("fuzz") / "models.config"
    config.write_text(CONFIG % (testdata / "saved_model_half_plus_two_2_versions"))
    with ServerProcess([f"--model_config_file={config}", "--file_system_poll_wait_seconds=0"]) as s:
        s.wait_available(MODEL, every_version=True)
        s.session = requests.Session()
        s.sent = 0
        yield s
        if os.environ.get("FUZZ_STATS"):  # `make fuzz` adds up the requests sent
            pathlib.Path(os.environ["FUZZ_STATS"]).write_text(json.dumps({"requests": s.sent}))
        tracebacks = [line for line in s.log_lines() if "Traceback" in line or "unexpected error" in line]
        assert not tracebacks, "the server logged exceptions:\n" + "\n".join(s.log_lines()[-60:])


# ---------------------------------------------------------------- JSON text, token by token
# Values are JSON *text* so that tokens Python's json cannot write (NaN, 5,000-digit numbers,
# lone surrogate escapes) can stand anywhere.

def _digits(n: int) -> str:
    return "9" * n


huge_int = st.integers(1, 6000).map(_digits) | st.integers(19, 30).map(_digits).map(lambda d: "-" + d)
huge_float = st.sampled_from(["1e400", "-1e400", "1e-400", "1e99999", "1.5e308", "4.9e-324", "NaN",
                              "Infinity", "-Infinity", "-0.0"]) | \
    st.integers(300, 6000).map(lambda n: "1e" + _digits(n)) | \
    st.integers(300, 6000).map(lambda n: _digits(n) + ".5")
small_number = st.integers(-(2**70), 2**70).map(str) | \
    st.floats(allow_nan=False, allow_infinity=False).map(repr)
odd_string = st.sampled_from([
    '"\\ud800"', '"\\udc80x"', '"a\\u0000b"', '""', '"\\uffff"', '"%s"' % ("x" * 5000), '"\\/"',
    '"serving_default"', '"classify_x_to_y"', '"regress_x_to_y"', '"\xe9"',
]) | st.text(max_size=20).map(json.dumps) | st.text(max_size=20).map(lambda t: json.dumps(t, ensure_ascii=False))
b64 = st.sampled_from(['{"b64": "AAAA"}', '{"b64": "!!!"}', '{"b64": 5}', '{"b64": null}', '{"b64": ["a"]}',
                       '{"b64": "AAAA", "x": 1}', '{"b64": "\\ud800"}', '{"b64": "A"}'])
deep = st.integers(1, 120_000).map(lambda n: "[" * n + "1" + "]" * n) | \
    st.integers(1, 120_000).map(lambda n: '{"a":' * n + "1" + "}" * n)
scalar = huge_int | huge_float | small_number | odd_string | b64 | \
    st.sampled_from(["true", "false", "null", "[]", "{}", "[[]]", "[{}]"])


def _array(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"


def _object(members: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{k}:{v}" for k, v in members) + "}"


value = st.recursive(
    scalar,
    lambda children: st.lists(children, max_size=4).map(_array)
    | st.lists(st.tuples(odd_string, children), max_size=4).map(_object)
    | st.lists(st.tuples(st.sampled_from(['"x"', '"y"', '"b64"']), children), max_size=3).map(_object),
    max_leaves=12,
) | deep

# Request keys each verb reads, and their usual values (so that the hostile part is deeper in).
KEYS = ['"signature_name"', '"instances"', '"inputs"', '"examples"', '"context"']
SIGNATURES = st.sampled_from(['"serving_default"', '"regress_x_to_y"', '"classify_x_to_y"',
                              '"classify_x2_to_y3"', '"regress_x2_to_y3"'])
usual = {
    '"signature_name"': SIGNATURES,
    '"instances"': st.sampled_from(["[1.0, 2.0]", "[[1.0], [2.0]]", '[{"x": 1.0}]']),
    '"inputs"': st.sampled_from(["[1.0]", '{"x": [1.0]}']),
    '"examples"': st.sampled_from(['[{"x": 1.0}]', '[{"x": [1.0]}]', '[{"x": 2}]', '[{"x2": 20.0}]']),
    '"context"': st.sampled_from(['{"x": 1.0}', "{}"]),
}


@st.composite
def bodies(draw) -> bytes:
    """A request object with each key absent, usual, or hostile; then sometimes re-encoded or cut."""
    members = []
    for key in KEYS:
        how = draw(st.sampled_from(["absent", "usual", "hostile", "nested"]))
        if how == "usual":
            members.append((key, draw(usual[key])))
        elif how == "hostile":
            members.append((key, draw(value)))
        elif how == "nested":  # a hostile value inside a list or an example, where the codec reads leaves
            inner = draw(value)
            members.append((key, draw(st.sampled_from([f"[{inner}]", f'[{{"x": {inner}}}]',
                                                       f'{{"x": {inner}}}', f"[[{inner}]]",
                                                       f'[{{"x": [{inner}]}}]']))))
    text = _object(members)
    encoding = draw(st.sampled_from(["utf-8"] * 6 + ["utf-16", "utf-32", "latin-1", "bom", "cut", "trail"]))
    if encoding == "bom":
        return b"\xef\xbb\xbf" + text.encode("utf-8", "surrogatepass")
    if encoding == "cut":
        raw = text.encode("utf-8", "surrogatepass")
        return raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    if encoding == "trail":
        return text.encode("utf-8", "surrogatepass") + draw(st.sampled_from([b"x", b"\x00", b"}", b" {}", b"\xff"]))
    return text.encode(encoding, "replace" if encoding == "latin-1" else "surrogatepass")


def paths() -> st.SearchStrategy[str]:
    model = st.sampled_from([MODEL, "nope", "HP2", "%00", "a%2Fb", "x" * 300, "%E9", "%ED%A0%80"])
    where = st.sampled_from(["", "/versions/123", "/versions/124", "/versions/0", "/labels/stable",
                             "/labels/canary", "/labels/nope", "/labels/%00", "/versions/-1",
                             "/versions/9223372036854775808", "/versions/abc", "/labels/", "/versions/"]) | \
        st.integers(1, 6000).map(lambda n: "/versions/" + _digits(n))
    return st.tuples(model, where).map(lambda mw: f"/v1/models/{mw[0]}{mw[1]}")


def check_answer(method: str, path: str, body: bytes | None, r: requests.Response) -> dict:
    shown = (body or b"")[:300]
    where = f"{method} {path[:200]} body={shown!r}... ({len(body or b'')} bytes) -> {r.status_code} {r.text[:300]!r}"
    assert r.status_code < 500, where
    assert r.headers.get("Content-Type", "").startswith("application/json"), where
    doc = json.loads(r.content.decode("utf-8"), parse_constant=float)  # valid UTF-8 and JSON (NaN allowed)
    assert isinstance(doc, dict), where
    if r.status_code == 200:
        assert "error" not in doc, where
    else:
        assert 400 <= r.status_code < 500, where
        assert list(doc) == ["error"] and isinstance(doc["error"], str) and doc["error"], where
    return doc


def send(server, method: str, path: str, body: bytes | None = None) -> dict:
    r = server.session.request(method, server.url + path, data=body, timeout=60)
    server.sent += 1
    return check_answer(method, path, body, r)


@SETTINGS
@given(verb=st.sampled_from(["predict", "classify", "regress"]), body=bodies())
def test_hostile_bodies_get_clean_errors(server, verb, body):
    send(server, "POST", f"/v1/models/{MODEL}:{verb}", body)


@SETTINGS
@given(path=paths(), verb=st.sampled_from([":predict", ":classify", ":regress", "", "/metadata"]),
       body=st.sampled_from([b'{"instances": [1.0]}', b'{"examples": [{"x": 1.0}]}', b"", b"{}"]))
def test_hostile_paths_get_clean_errors(server, path, verb, body):
    method = "POST" if verb.startswith(":") else "GET"
    send(server, method, path + verb, body if method == "POST" else None)


@SETTINGS
@given(number=huge_int | huge_float | small_number,
       where=st.sampled_from(['{"instances": [%s]}', '{"inputs": {"x": [%s]}}', '{"instances": [[%s]]}',
                              '{"signature_name": "regress_x_to_y", "examples": [{"x": %s}]}',
                              '{"signature_name": "classify_x_to_y", "context": {"x": %s}, "examples": [{}]}',
                              '{"signature_name": "regress_x_to_y", "examples": [{"x": [%s, 1]}]}',
                              '{"signature_name": %s, "instances": [1.0]}']))
def test_numbers_anywhere(server, number, where):
    verb = "regress" if "regress" in where else "classify" if "classify" in where else "predict"
    send(server, "POST", f"/v1/models/{MODEL}:{verb}", (where % number).encode())


@SETTINGS
@given(xs=st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=1, max_size=20),
       where=st.sampled_from(["", "/versions/123", "/versions/124", "/labels/stable", "/labels/canary"]))
def test_valid_predictions(server, xs, where):
    doc = send(server, "POST", f"/v1/models/{MODEL}{where}:predict", json.dumps({"instances": xs}).encode())
    assert doc["predictions"] == pytest.approx([x / 2 + 2 for x in xs], rel=1e-6, abs=1e-6)


# Each request below once answered HTTP 500 (a Python exception), found by the properties above.
KNOWN = [
    # ValueError: Exceeds the limit (4300 digits) for integer string conversion (codec: the JSON reader)
    ("POST", f"/v1/models/{MODEL}:predict", b'{"instances": [' + b"9" * 5000 + b"]}"),
    ("POST", f"/v1/models/{MODEL}:predict", b'{"signature_name": ' + b"9" * 5000 + b', "instances": [1.0]}'),
    ("POST", f"/v1/models/{MODEL}:regress", b'{"signature_name": "regress_x_to_y", "examples": [{"x": '
     + b"9" * 5000 + b"}]}"),
    ("POST", f"/v1/models/{MODEL}:predict", b'{"instances": [1e' + b"9" * 5000 + b"]"),  # cut: the slow reader
    # ... and in the URL's version (app: _version)
    ("GET", f"/v1/models/{MODEL}/versions/" + "9" * 5000, None),
    ("POST", f"/v1/models/{MODEL}/versions/" + "9" * 5000 + ":predict", b'{"instances": [1.0]}'),
    # OverflowError: int too large to convert to float (an integer past double range)
    ("POST", f"/v1/models/{MODEL}:predict", b'{"instances": [' + b"9" * 310 + b"]}"),
    ("POST", f"/v1/models/{MODEL}:predict", b'{"inputs": {"x": [' + b"9" * 310 + b"]}}"),
    # ValueError: maximum supported dimension for an ndarray is currently 64, found 65 (codec: _to_array)
    ("POST", f"/v1/models/{MODEL}:predict", b'{"instances": ' + b"[" * 65 + b"1" + b"]" * 65 + b"}"),
    ("POST", f"/v1/models/{MODEL}:predict", b'{"inputs": ' + b"[" * 65 + b"1" + b"]" * 65 + b"}"),
    # RecursionError writing the error message that quotes the whole request (codec: pretty)
    ("POST", f"/v1/models/{MODEL}:predict", b'{"instances": [1.0], "inputs": ' + b"[" * 990 + b"]" * 990 + b"}"),
    # UnicodeEncodeError writing the error message (a lone surrogate echoed back): 500, empty body
    ("POST", f"/v1/models/{MODEL}:predict", b'{"signature_name": "\\ud800", "instances": [1.0]}'),
    ("POST", f"/v1/models/{MODEL}:predict", b'{"signature_name": "\xe9", "instances": [1.0]}'),
    # UnicodeEncodeError putting a feature name that is not UTF-8 into a tf.Example (tf_example_json)
    ("POST", f"/v1/models/{MODEL}:classify", b'{"examples": [{"\\ud800": 9}]}'),
    ("POST", f"/v1/models/{MODEL}:classify", b'{"examples": [{"\\udc80": 9}]}'),
    ("POST", f"/v1/models/{MODEL}:regress", b'{"examples": [{"\xe9": 9}]}'),
    ("POST", f"/v1/models/{MODEL}:regress", b'{"context": {"\xe9": 9}, "examples": [{}]}'),
    # Werkzeug's HTML 404/405 pages (app: paths its rules cannot match, methods not listed)
    ("GET", "/v1/models/a%0Ab", None),
    ("GET", "/a%0Ab", None),
    ("PROPFIND", f"/v1/models/{MODEL}", None),
]


@pytest.mark.parametrize("method,path,body", KNOWN, ids=range(len(KNOWN)))
def test_once_failing_requests(server, method, path, body):
    send(server, method, path, body)


def test_lone_surrogate_escape_is_a_parse_error(server):
    """rapidjson refuses a \\ud800-\\udbff escape without its pair, whichever reader Python takes."""
    for body in (b'{"examples": [{"\\ud800": 9}]}', b'{"examples": [{"\\ud800": NaN}]}'):
        doc = send(server, "POST", f"/v1/models/{MODEL}:classify", body)
        assert doc["error"].startswith("JSON Parse error: The surrogate pair in string is invalid."), doc


def test_huge_numbers_read_as_rapidjson_does(server):
    """Integers past uint64 are doubles; past the double range rapidjson 1.1.0 (reader.h, ParseNumber)
    refuses them, "Number too big to be stored in double." at the number's start, as 1e999."""
    for digits in (310, 5000):
        doc = send(server, "POST", f"/v1/models/{MODEL}:predict",
                   b'{"instances": [' + b"9" * digits + b", -" + b"9" * digits + b"]}")
        assert doc["error"] == "JSON Parse error: Number too big to be stored in double. at offset: 15"
    # 40 digits: a double beyond float32 (the input's type): +inf, as rapidjson's GetFloat casts it
    doc = send(server, "POST", f"/v1/models/{MODEL}:predict", b'{"instances": [' + b"9" * 40 + b"]}")
    assert "error" not in doc and "predictions" in doc, doc
    doc = send(server, "GET", f"/v1/models/{MODEL}/versions/" + "9" * 5000)
    assert doc["error"].startswith("Failed to convert version: 999") and doc["error"].endswith("to numeric.")
