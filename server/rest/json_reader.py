"""JSON request bodies read as TF Serving reads them: rapidjson 1.1.0 with its parse flags.

TF Serving (util/json_tensor.cc: ParseJson) parses a body with kParseIterativeFlag |
kParseNanAndInfFlag | kParseStopWhenDoneFlag from an EncodedInputStream over the bytes. So:
a UTF-8 byte-order mark is skipped, the value ends at the first complete root (what follows is
ignored), a NUL byte ends the input, nesting has no limit, NaN/Inf/Infinity are numbers, invalid UTF-8
inside strings is kept, numbers are converted by rapidjson's own (not exactly rounded) algorithm
(json_numbers.py) and a repeated member name keeps its first value (what FindMember finds).

`parse(body)` gives the body as Python values or raises JsonParseError with rapidjson's message and
byte offset. One set of rules, applied three ways, fastest first: orjson when its reading provably is
rapidjson's (json_numbers.orjson_agrees); else, for valid JSON, the stdlib's C scanner with rapidjson's
number conversion and first-name-wins objects; else the reader below, a state machine of rapidjson's
iterative parser (which also gives every error's message and offset).
"""
from __future__ import annotations

import json
import re
from typing import Any, Callable, cast

import orjson

from .json_numbers import exact_enough, orjson_agrees, plain_numbers, read_number


class JsonParseError(Exception):
    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.message = message
        self.offset = offset


EMPTY = "The document is empty."
ROOT_NOT_SINGULAR = "The document root must not be followed by other values."
MISS_NAME = "Missing a name for object member."
MISS_COLON = "Missing a colon after a name of object member."
MISS_COMMA_OBJECT = "Missing a comma or '}' after an object member."
MISS_COMMA_ARRAY = "Missing a comma or ']' after an array element."
INVALID_VALUE = "Invalid value."
BAD_HEX = "Incorrect hex digit after \\u escape in string."
BAD_SURROGATE = "The surrogate pair in string is invalid."
BAD_ESCAPE = "Invalid escape character in string."
MISS_QUOTE = "Missing a closing quotation mark in string."

_WS = re.compile(rb"[ \t\n\r]*")
# A string without escapes or control characters, and the run of such bytes inside any string.
_PLAIN_STRING = re.compile(rb'"([^"\\\x00-\x1f]*)"')
_STRING_CHUNK = re.compile(rb'[^"\\\x00-\x1f]*')
# Both patterns match the empty string, so their match() always gives a Match (never None).
_ws_at = cast("Callable[[bytes, int], re.Match[bytes]]", _WS.match)
_string_chunk_at = cast("Callable[[bytes, int], re.Match[bytes]]", _STRING_CHUNK.match)
_NUMBER = rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
# Numbers each followed by a comma: every one is exactly what rapidjson's greedy reading takes.
_NUMBER_RUN = re.compile(rb"(?:" + _NUMBER + rb"[ \t\n\r]*,[ \t\n\r]*)+")
_ESCAPES = {ord('"'): b'"', ord("\\"): b"\\", ord("/"): b"/", ord("b"): b"\b", ord("f"): b"\f",
            ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t"}
_HEX = frozenset(b"0123456789abcdefABCDEF")
_LITERALS = {ord("n"): (b"null", None), ord("t"): (b"true", True), ord("f"): (b"false", False)}

# States of rapidjson's iterative parser that matter between tokens.
_START, _OBJ_INIT, _KEY, _KV_DELIM, _MEMBER, _MEMBER_DELIM, _ARR_INIT, _ELEMENT, _ELEM_DELIM = range(9)
_END_OF_INPUT = {_START: EMPTY, _OBJ_INIT: MISS_NAME, _MEMBER_DELIM: MISS_NAME, _KEY: MISS_COLON,
                 _MEMBER: MISS_COMMA_OBJECT, _KV_DELIM: INVALID_VALUE, _ARR_INIT: INVALID_VALUE,
                 _ELEM_DELIM: INVALID_VALUE, _ELEMENT: MISS_COMMA_ARRAY}


def input_start(body: bytes) -> int:
    """Where rapidjson's EncodedInputStream<UTF8> starts reading: past EF, BB, BF, each if present."""
    i = 0
    for byte in (0xEF, 0xBB, 0xBF):
        if i < len(body) and body[i] == byte:
            i += 1
    return i


def parse(body: bytes) -> Any:
    """The body's value as rapidjson (TF Serving's flags) reads it; JsonParseError where it refuses."""
    nul = body.find(b"\0")
    if nul >= 0:  # rapidjson's stream answers '\0' at the end: a NUL byte ends the input
        body = body[:nul]
    start = input_start(body)
    text = body[start:] if start else body
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        doc = _FAILED
    else:
        if orjson_agrees(text, doc):
            return doc
    # Valid JSON with numbers orjson rounds otherwise or repeated names, or with NaN/Infinity (which
    # orjson refuses): the stdlib's C scanner with rapidjson's rules, before the reader below.
    if (doc is not _FAILED or b"NaN" in text or b"Inf" in text) and _STDLIB_DIFFERS.search(text) is None:
        doc = _stdlib(text)
        if doc is not _FAILED:
            return doc
    return _Reader(body, start).document()


# Where the stdlib would read otherwise: lone surrogate escapes (rapidjson refuses a high one), and
# NaN/Infinity followed by a fraction or exponent (rapidjson goes on reading "NaN.5" as 0.5).
_STDLIB_DIFFERS = re.compile(rb"\\u[dD][89a-fA-F]|(?:NaN|Inf|Infinity)[.eE]")
_FAILED = object()


class _Refused(Exception):
    pass


def _refuse(message: str, offset: int):
    raise _Refused


def _first_wins(pairs: list) -> dict:
    out: dict = {}
    for k, v in pairs:
        if k not in out:
            out[k] = v
    return out


def _float(token: str) -> float:
    if exact_enough(token):
        return float(token)
    return read_number(token.encode(), 0, _refuse)[0]


def _int(token: str) -> Any:
    if len(token) <= 18:
        return int(token)
    return read_number(token.encode(), 0, _refuse)[0]


_DECODER = json.JSONDecoder(parse_float=_float, parse_int=_int, object_pairs_hook=_first_wins)


def _stdlib(text: bytes) -> Any:
    """The stdlib's reading with rapidjson's rules (first name wins, rapidjson's numbers, the root's
    end as the end), or _FAILED where it cannot tell (errors, other NaN spellings, deep nesting)."""
    s = text.decode("utf-8", "surrogateescape")
    i = len(s) - len(s.lstrip(" \t\n\r"))
    try:
        return _DECODER.raw_decode(s, i)[0]
    except (ValueError, RecursionError, _Refused):
        return _FAILED


class _Reader:
    """rapidjson's iterative parser (reader.h: IterativeParse, Predict, Transit, HandleError)."""

    def __init__(self, data: bytes, start: int):
        self.s = data
        self.n = len(data)
        self.i = start

    def fail(self, message: str, offset: int):
        raise JsonParseError(message, offset)

    def document(self) -> Any:
        s, n = self.s, self.n
        ws = _ws_at
        i = ws(s, self.i).end()
        state = _START
        stack: list = []  # open containers: [container, key or None, state to go back to]
        container: Any = None
        key = None
        while i < n:
            c = s[i]
            if c == 0x5B or c == 0x7B:  # '[' '{'
                if state not in (_START, _KV_DELIM, _ARR_INIT, _ELEM_DELIM):
                    self._unexpected(state, i)
                back = _MEMBER if state == _KV_DELIM else _ELEMENT
                stack.append((container, key, back))
                if c == 0x5B:
                    container, state = [], _ARR_INIT
                else:
                    container, state = {}, _OBJ_INIT
                key = None
                i = ws(s, i + 1).end()
                if state == _ARR_INIT:
                    j = self._numbers(container, i)
                    if j != i:
                        state, i = _ELEM_DELIM, j
                continue
            if c == 0x5D or c == 0x7D:  # ']' '}'
                if c == 0x5D:
                    if state == _ELEM_DELIM:
                        self.fail(INVALID_VALUE, i)
                    if state not in (_ARR_INIT, _ELEMENT):
                        self._unexpected(state, i)
                else:
                    if state == _MEMBER_DELIM:
                        self.fail(MISS_NAME, i)
                    if state not in (_OBJ_INIT, _MEMBER):
                        self._unexpected(state, i)
                done = container
                container, key, state = stack.pop()
                i += 1
                if not stack:
                    return done
                self._put(container, key, done)
                i = ws(s, i).end()
                continue
            if c == 0x2C:  # ','
                if state == _MEMBER:
                    state = _MEMBER_DELIM
                elif state == _ELEMENT:
                    state = _ELEM_DELIM
                    i = ws(s, i + 1).end()
                    i = self._numbers(container, i)
                    continue
                else:
                    self._unexpected(state, i)
                i = ws(s, i + 1).end()
                continue
            if c == 0x3A:  # ':'
                if state != _KEY:
                    self._unexpected(state, i)
                state = _KV_DELIM
                i = ws(s, i + 1).end()
                continue
            if state in (_OBJ_INIT, _MEMBER_DELIM):
                if c != 0x22:
                    self.fail(MISS_NAME, i)
                key, i = self._string(i)
                state = _KEY
                i = ws(s, i).end()
                continue
            if state not in (_START, _KV_DELIM, _ARR_INIT, _ELEM_DELIM):
                self._unexpected(state, i)
            value, i = self._scalar(i)
            if state == _START:
                return value
            if state == _KV_DELIM:
                if key not in container:  # the first of repeated names wins (FindMember)
                    container[key] = value
                state = _MEMBER
            else:
                container.append(value)
                state = _ELEMENT
            i = ws(s, i).end()
        self.fail(_END_OF_INPUT[state], self.n)

    @staticmethod
    def _put(container: Any, key: Any, value: Any) -> None:
        if key is None:
            container.append(value)
        elif key not in container:
            container[key] = value

    def _unexpected(self, state: int, i: int):
        # A token the state does not expect: rapidjson's HandleError for that state, at the token.
        self.fail(_END_OF_INPUT[state], i)

    def _numbers(self, out: list, i: int) -> int:
        """Append the run of comma-terminated plain numbers at i (if any); where the run ends."""
        m = _NUMBER_RUN.match(self.s, i)
        if m is None:
            return i
        end = m.end()
        out.extend(plain_numbers(self.s, i, end, self.fail))
        return end

    def _scalar(self, i: int) -> tuple[Any, int]:
        s = self.s
        c = s[i]
        if c == 0x22:
            return self._string(i)
        literal = _LITERALS.get(c)
        if literal is not None:
            word, value = literal
            j = i + 1
            while j < i + len(word) and j < self.n and s[j] == word[j - i]:
                j += 1
            if j < i + len(word):
                self.fail(INVALID_VALUE, j)
            return value, j
        return read_number(s, i, self.fail)

    def _string(self, i: int) -> tuple[str, int]:
        s = self.s
        m = _PLAIN_STRING.match(s, i)
        if m is not None:
            return m.group(1).decode("utf-8", "surrogateescape"), m.end()
        buf = bytearray()
        i += 1
        while True:
            j = _string_chunk_at(s, i).end()
            buf += s[i:j]
            i = j
            if i >= self.n:
                self.fail(MISS_QUOTE, self.n)
            c = s[i]
            if c == 0x22:
                return bytes(buf).decode("utf-8", "surrogateescape"), i + 1
            if c != 0x5C:  # a control character
                self.fail(BAD_ESCAPE, i)
            esc = i
            e = s[i + 1] if i + 1 < self.n else 0
            simple = _ESCAPES.get(e)
            if simple is not None:
                buf += simple
                i += 2
                continue
            if e != 0x75:  # 'u'
                self.fail(BAD_ESCAPE, esc)
            cp, i = self._hex4(i + 2, esc)
            if 0xD800 <= cp <= 0xDBFF:
                if s[i:i + 2] != b"\\u":
                    self.fail(BAD_SURROGATE, esc)
                low, i = self._hex4(i + 2, esc)
                if not 0xDC00 <= low <= 0xDFFF:
                    self.fail(BAD_SURROGATE, esc)
                cp = (((cp - 0xD800) << 10) | (low - 0xDC00)) + 0x10000
            buf += chr(cp).encode("utf-8", "surrogatepass")

    def _hex4(self, i: int, esc: int) -> tuple[int, int]:
        digits = self.s[i:i + 4]
        if len(digits) < 4 or not all(d in _HEX for d in digits):
            self.fail(BAD_HEX, esc)
        return int(digits, 16), i + 4
