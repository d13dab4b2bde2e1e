"""The rapidjson 1.1.0 reference (tests/oracle/rapidjson_oracle.cc, built by `make rapidjson-oracle`)
and this server's reader and writer side by side, for tests/test_rest_json_oracle.py and scripts/fuzz.py.

`Oracle().compare(bodies)` runs one oracle process over a whole batch and returns, for each body that
the two read or write differently, a short description of the difference.
"""
from __future__ import annotations

import math
import struct
import subprocess
from pathlib import Path
from typing import Any

from server.rest.json_reader import JsonParseError, parse
from server.rest.json_writer import pretty, to_bytes

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "build" / "oracle" / "rapidjson_oracle"


def missing_reason() -> str | None:
    if BINARY.exists():
        return None
    return (f"{BINARY.relative_to(ROOT)} not built: `make rapidjson-oracle` builds it from Debian's "
            f"rapidjson-dev (apt-get install rapidjson-dev g++, as root)")


def _scalar(v: Any) -> str:
    if v is None:
        return "n"
    if v is True:
        return "t"
    if v is False:
        return "f"
    if type(v) is int:
        return f"i{v}" if -(1 << 63) <= v < (1 << 63) else f"u{v}"
    if type(v) is float:
        return "d%016x" % struct.unpack("<Q", struct.pack("<d", v))[0]
    return "s" + to_bytes(v).hex()


class _Mark:
    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


def tokens_of(value: Any) -> list[str]:
    """Our value as the oracle's tokens (without a stack of Python calls: 500,000 levels deep)."""
    out: list[str] = []
    todo: list = [value]
    while todo:
        v = todo.pop()
        t = type(v)
        if t is _Mark:
            out.append(v.text)
        elif t is list:
            out.append("[")
            todo.append(_Mark("]"))
            todo.extend(reversed(v))
        elif t is dict:
            out.append("{")
            todo.append(_Mark("}"))
            for k, e in reversed(list(v.items())):
                todo.append(e)
                todo.append(_Mark("k" + to_bytes(k).hex()))
        else:
            out.append(_scalar(v))
    return out


def first_wins(tokens: list[str]) -> tuple[list[str], bool]:
    """The oracle's tokens with every repeated member name but the first dropped (FindMember's
    view, which is what TF Serving reads), and whether there was any."""
    out: list[str] = []
    names: list[set | None] = []  # per open container: the names seen (None for an array)
    skip = 0  # > 0 while inside a dropped member's value: the depth within it
    dropped = False
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if skip:
            if tok in ("[", "{"):
                skip += 1
            elif tok in ("]", "}"):
                skip -= 1
            if skip == 1:
                skip = 0
            continue
        if tok[0] == "k" and names and names[-1] is not None:
            if tok in names[-1]:
                dropped = True
                value = tokens[i]
                i += 1
                if value in ("[", "{"):
                    skip = 2
                continue
            names[-1].add(tok)
        elif tok == "[":
            names.append(None)
        elif tok == "{":
            names.append(set())
        elif tok in ("]", "}"):
            names.pop()
        out.append(tok)
    return out, dropped


def ours(body: bytes) -> tuple[str, Any]:
    try:
        return "V", parse(body)
    except JsonParseError as e:
        return "E", (e.message, e.offset)


class Oracle:
    def __init__(self, binary: Path = BINARY):
        self.binary = binary

    def run(self, bodies: list[bytes], mode: str = "p") -> list[str]:
        data = b"".join(b"%s %d\n" % (mode.encode(), len(b)) + b for b in bodies)
        done = subprocess.run([str(self.binary)], input=data, capture_output=True, timeout=600, check=True)
        lines = done.stdout.decode("ascii").split("\n")[:len(bodies)]
        assert len(lines) == len(bodies), done.stderr
        return lines

    def compare(self, bodies: list[bytes], write: bool = False) -> list[str]:
        """One line per difference: the body (abridged) and both readings; with `write`, also the
        texts rapidjson's PrettyWriter and json_writer.pretty make of the value."""
        read = self.run(bodies, "p")
        written = self.run(bodies, "w") if write else [None] * len(bodies)
        diffs = []
        for body, theirs, text in zip(bodies, read, written):
            kind, value = ours(body)
            diff = _difference(kind, value, theirs, text)
            if diff:
                diffs.append(f"{body[:120]!r}{'...' if len(body) > 120 else ''} ({len(body)} bytes): {diff}")
        return diffs


def _difference(kind: str, value: Any, theirs: str, text: str | None) -> str | None:
    if theirs.startswith("E "):
        _, _code, offset, message = theirs.split(" ", 3)
        expected = (message, int(offset))
        if kind != "E" or value != expected:
            return f"rapidjson: error {expected}; ours: {_short(kind, value)}"
        return None
    if kind == "E":
        return f"rapidjson reads it; ours: error {value}"
    tokens, dropped = first_wins(theirs.split(" ")[1:])
    mine = tokens_of(value)
    if mine != tokens:
        at = next((k for k, (a, b) in enumerate(zip(mine, tokens)) if a != b), min(len(mine), len(tokens)))
        return f"values differ at token {at}: rapidjson {tokens[at:at + 3]}, ours {mine[at:at + 3]}"
    if text is not None and text != "W-" and not dropped:
        want = bytes.fromhex(text[2:] if text.startswith("W!") else text[1:])
        got = pretty(value).encode("utf-8", "surrogateescape")
        if got != want:
            return f"written differently: rapidjson {want[:80]!r}, ours {got[:80]!r}"
    return None


def _short(kind: str, value: Any) -> str:
    if kind == "E":
        return f"error {value}"
    text = repr(value)
    return "value " + (text[:80] + "..." if len(text) > 80 else text)


def is_nan(v: Any) -> bool:
    return type(v) is float and math.isnan(v)
