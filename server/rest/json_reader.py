"""JSON request bodies read as TF Serving reads them (rapidjson with kParseNanAndInfFlag).

`parse(body)` gives the body as Python values, NaN/Infinity tokens accepted, or raises JsonParseError
with rapidjson's own message and byte offset, which TF Serving puts in its "JSON Parse error" answer.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson


class JsonParseError(Exception):
    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.message = message
        self.offset = offset


_WS = b" \t\n\r"
# A \u escape of a UTF-16 surrogate: the stdlib reads a lone one into the string, rapidjson refuses it.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SIMPLE_ESCAPES = {ord('"'): '"', ord("\\"): "\\", ord("/"): "/", ord("b"): "\b",
                   ord("f"): "\f", ord("n"): "\n", ord("r"): "\r", ord("t"): "\t"}


class _RapidParser:
    """A reader with rapidjson's grammar (kParseNanAndInfFlag) and its error messages and offsets.

    Only used when orjson and the stdlib both refuse the body: it either reads what rapidjson reads
    (e.g. "Inf", "-NaN") or raises JsonParseError at the byte where rapidjson stops.
    """

    def __init__(self, data: bytes):
        self.s = data
        self.i = 0
        self.n = len(data)

    def peek(self) -> int:
        return self.s[self.i] if self.i < self.n else 0

    def take(self) -> int:
        c = self.peek()
        if self.i < self.n:
            self.i += 1
        return c

    def consume(self, ch: str) -> bool:
        if self.peek() == ord(ch):
            self.i += 1
            return True
        return False

    def ws(self) -> None:
        while self.i < self.n and self.s[self.i] in _WS:
            self.i += 1

    def fail(self, msg: str, offset: int):
        raise JsonParseError(msg, offset)

    def document(self) -> Any:
        self.ws()
        if self.peek() == 0:
            self.fail("The document is empty.", self.i)
        v = self.value()
        self.ws()
        if self.peek() != 0:
            self.fail("The document root must not be followed by other values.", self.i)
        return v

    def value(self) -> Any:
        c = self.peek()
        if c == ord("n"):
            return self.literal("null", None)
        if c == ord("t"):
            return self.literal("true", True)
        if c == ord("f"):
            return self.literal("false", False)
        if c == ord('"'):
            return self.string()
        if c == ord("{"):
            return self.obj()
        if c == ord("["):
            return self.arr()
        return self.number()

    def literal(self, word: str, val: Any) -> Any:
        self.take()
        for ch in word[1:]:
            if not self.consume(ch):
                self.fail("Invalid value.", self.i)
        return val

    def obj(self) -> dict:
        self.take()
        self.ws()
        out: dict = {}
        if self.consume("}"):
            return out
        while True:
            if self.peek() != ord('"'):
                self.fail("Missing a name for object member.", self.i)
            key = self.string()
            self.ws()
            if not self.consume(":"):
                self.fail("Missing a colon after a name of object member.", self.i)
            self.ws()
            val = self.value()
            out.setdefault(key, val)  # rapidjson's FindMember finds the first of duplicate names
            self.ws()
            c = self.peek()
            if c == ord(","):
                self.take()
                self.ws()
            elif c == ord("}"):
                self.take()
                return out
            else:
                self.fail("Missing a comma or '}' after an object member.", self.i)

    def arr(self) -> list:
        self.take()
        self.ws()
        out: list = []
        if self.consume("]"):
            return out
        while True:
            out.append(self.value())
            self.ws()
            if self.consume(","):
                self.ws()
            elif self.consume("]"):
                return out
            else:
                self.fail("Missing a comma or ']' after an array element.", self.i)

    def hex4(self, esc_offset: int) -> int:
        cp = 0
        for _ in range(4):
            c = self.peek()
            if chr(c) in "0123456789abcdefABCDEF" and c:
                cp = cp * 16 + int(chr(c), 16)
                self.take()
            else:
                self.fail("Incorrect hex digit after \\u escape in string.", esc_offset)
        return cp

    def string(self) -> str:
        self.take()
        buf = bytearray()
        while True:
            c = self.peek()
            if c == ord("\\"):
                esc = self.i
                self.take()
                e = self.peek()
                if e in _SIMPLE_ESCAPES:
                    self.take()
                    buf += _SIMPLE_ESCAPES[e].encode()
                elif e == ord("u"):
                    self.take()
                    cp = self.hex4(esc)
                    if 0xD800 <= cp <= 0xDBFF:
                        if not (self.consume("\\") and self.consume("u")):
                            self.fail("The surrogate pair in string is invalid.", esc)
                        cp2 = self.hex4(esc)
                        if not 0xDC00 <= cp2 <= 0xDFFF:
                            self.fail("The surrogate pair in string is invalid.", esc)
                        cp = (((cp - 0xD800) << 10) | (cp2 - 0xDC00)) + 0x10000
                    buf += chr(cp).encode("utf-8", "surrogatepass")
                else:
                    self.fail("Invalid escape character in string.", esc)
            elif c == ord('"'):
                self.take()
                return buf.decode("utf-8", "surrogateescape")
            elif c < 0x20:
                if c == 0:
                    self.fail("Missing a closing quotation mark in string.", self.i)
                self.fail("Invalid encoding in string.", self.i)
            else:
                buf.append(c)
                self.i += 1

    def digits(self) -> str:
        start = self.i
        while self.i < self.n and 0x30 <= self.s[self.i] <= 0x39:
            self.i += 1
        return self.s[start:self.i].decode()

    def number(self) -> Any:
        start = self.i
        minus = self.consume("-")
        c = self.peek()
        if c == ord("0"):
            ip = "0"
            self.take()
        elif 0x31 <= c <= 0x39:
            ip = self.digits()
        elif c in (ord("N"), ord("I")):
            if self.consume("N"):
                if self.consume("a") and self.consume("N"):
                    return math.nan
                self.fail("Invalid value.", self.i)
            self.take()
            if self.consume("n") and self.consume("f"):
                if self.peek() == ord("i"):
                    for ch in "inity":
                        if not self.consume(ch):
                            self.fail("Invalid value.", self.i)
                return -math.inf if minus else math.inf
            self.fail("Invalid value.", self.i)
        else:
            self.fail("Invalid value.", self.i)
        fp = ""
        is_double = False
        if self.consume("."):
            if not (0x30 <= self.peek() <= 0x39):
                self.fail("Miss fraction part in number.", self.i)
            fp = self.digits()
            is_double = True
        exp = ""
        if self.peek() in (ord("e"), ord("E")):
            self.take()
            sign = ""
            if self.peek() in (ord("+"), ord("-")):
                sign = chr(self.take())
            if not (0x30 <= self.peek() <= 0x39):
                self.fail("Miss exponent in number.", self.i)
            ed = self.digits()
            if sign != "-" and (len(ed.lstrip("0")) > 6 or int(ed) > 308 + len(fp)):
                self.fail("Number too big to be stored in double.", start)
            exp = "e" + sign + ed
            is_double = True
        text = ("-" if minus else "") + ip + ("." + fp if fp else "") + exp
        return float(text) if is_double else json_int(text)


def json_int(text: str) -> int | float:
    """A JSON integer as rapidjson reads it: int64/uint64 as such, anything longer as a double
    (±inf beyond its range; never int() on thousands of digits, which Python refuses)."""
    if len(text) <= 20:
        v = int(text)
        if -(1 << 63) <= v < (1 << 64):
            return v
    return float(text)


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _stdlib_constant(name: str) -> float:
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[name]


def parse(body: bytes) -> Any:
    """Parse a request body as rapidjson (with NaN/Infinity) would; raise JsonParseError if it can't.

    orjson reads ordinary JSON; bodies with NaN/Infinity tokens, numbers beyond double range (read as
    +-inf) or invalid UTF-8 inside strings (kept byte for byte) go to the stdlib; anything else goes to
    the rapidjson-grammar reader, which gives rapidjson's message and offset.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    text = body.decode("utf-8", "surrogateescape")
    try:
        doc = json.loads(text, parse_constant=_stdlib_constant, parse_int=json_int)
    except (ValueError, RecursionError):
        pass
    else:
        if not _SURROGATE_ESCAPE.search(body):
            return doc
    try:
        return _RapidParser(body).document()
    except RecursionError:
        raise JsonParseError("Terminate parsing due to Handler error.", 0) from None
