"""Request bodies for the rapidjson differential test and `make fuzz`: valid, damaged and hostile JSON."""
from __future__ import annotations

import math
import random
import struct

from hypothesis import strategies as st

EDGE_NUMBERS = [
    "0", "-0", "0.0", "-0.0", "1", "-1", "2147483647", "2147483648", "-2147483648", "-2147483649",
    "4294967295", "4294967296", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
    "-9223372036854775809", "18446744073709551615", "18446744073709551616", "123456789012345678901234567890",
    "1" * 309, "1" * 310, "9" * 400, "1e308", "1.7976931348623157e308", "1.7976931348623159e308", "1e309",
    "1e400", "-1e400", "1e-400", "4.9e-324", "2.2250738585072014e-308", "0.1", "0.30000000000000004",
    "1.2345678901234567", "3.141592653589793238462643383279", "1E5", "1e+5", "1e-5", "1.5e-300",
    "0." + "0" * 400 + "1", "0." + "0" * 300 + "1e300", "1." + "0" * 30, "16777217", "9007199254740993",
    "1e22", "1e23", "8.98846567431158e307", "1e-2147483648", "1e0000000000000000000001",
    "NaN", "-NaN", "Inf", "-Inf", "Infinity", "-Infinity", "NaN.5", "Inf.5e1", "InfE", "Infe5", "NInfinity",
    "NaInf", "Infinit", "Na", "N", "I", "nan", "inf", "-", "01", "1.", ".5", "1e", "1e+", "+1", "--1", "0x10",
]
STRINGS = ['"a"', '""', '"\\u0000"', '"\\ud83d\\ude00"', '"\\ud83d"', '"\\udc00"', '"\\ud83dx"', '"\\uZZZZ"',
           '"\\x"', '"tab\\t"', '"\x01"', '"\x1f"', '"caf\xe9"', '"\\/"', '"\\u003a"', '"a:b"', '"\\"']
WS = ["", " ", "\n", "\t", "\r\n", "\x0b", "\x0c"]


def _value(rng: random.Random, depth: int) -> str:
    r = rng.random()
    if depth > 4 or r < 0.45:
        pick = rng.random()
        if pick < 0.5:
            return rng.choice(EDGE_NUMBERS) if rng.random() < 0.5 else repr(rng.uniform(-1e6, 1e6))
        if pick < 0.7:
            return rng.choice(STRINGS)
        if pick < 0.8:
            return rng.choice(["true", "false", "null", "tru", "nul", "fals"])
        return str(rng.randint(-(1 << 70), 1 << 70))
    w = rng.choice(WS)
    if r < 0.75:
        items = [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
        return "[" + w + ("," + w).join(items) + "]"
    keys = [rng.choice(['"instances"', '"inputs"', '"a"', '"b"', '"signature_name"']) for _ in range(rng.randint(0, 4))]
    return "{" + ",".join(f"{w}{k}{w}:{w}{_value(rng, depth + 1)}" for k in keys) + "}"


def _damage(rng: random.Random, body: bytes) -> bytes:
    b = bytearray(body)
    for _ in range(rng.randint(1, 3)):
        if not b:
            break
        i = rng.randrange(len(b))
        op = rng.random()
        if op < 0.3:
            del b[i]
        elif op < 0.6:
            b[i:i] = bytes([rng.choice(b'[]{}",:\\ 0eE.-+NI\x00\x01\xff\xef\xbb\xbf')])
        elif op < 0.8:
            b[i] = rng.randrange(256)
        else:
            del b[i:]
    return bytes(b)


def body(rng: random.Random) -> bytes:
    """One body: a random document, often a request, then maybe damaged, prefixed or followed."""
    r = rng.random()
    if r < 0.5:
        text = '{"instances":' + _value(rng, 1) + "}"
    else:
        text = _value(rng, 0)
    data = text.encode("utf-8", "surrogatepass")
    if rng.random() < 0.4:
        data = _damage(rng, data)
    if rng.random() < 0.1:
        data = rng.choice([b"\xef\xbb\xbf", b"\xef", b"\xbb\xbf", b" ", b"\x00"]) + data
    if rng.random() < 0.1:
        data += rng.choice([b" xyz", b"}", b",", b"\x00junk", b"[1]", b"\xff"])
    return data


def double_body(rng: random.Random) -> bytes:
    """A list of one random finite double (any bit pattern, or a decimal of up to 17 digits), for
    comparing how the two writers print doubles (Grisu2 in rapidjson)."""
    while True:
        if rng.random() < 0.5:
            d = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        else:
            d = float(f"{rng.randrange(1, 10 ** rng.randint(1, 17))}e{rng.randint(-330, 310)}")
        if math.isfinite(d):
            return b"[%s]" % repr(d).encode()


def deep(levels: int, opener: bytes = b"[", closer: bytes = b"]") -> bytes:
    return b'{"instances":[1], "nested":' + opener * levels + closer * levels + b"}"


FIXED = [
    b'{"instances":[1.0]} xyz', b"\xef\xbb\xbf{\"instances\":[1.0]}", b'{"instances":[1],"instances":[2]}',
    b'{"instances":[1],"instances":[2],"x":Inf}', b'{"instances":[1e400]}', b'{"instances":[-1e400]}',
    b'{"instances":["\x01"]}', deep(500_000), deep(500_000, b"{", b"}"), deep(2_000), b"", b" ", b"\x00",
    b'{"instances":[1,\x002]}', b'{"instances":[1,2,]}', b'{"a":1,}', b'{"instances":"\xff\xfe"}',
]

bodies = st.builds(body, st.randoms(use_true_random=False))
