"""JSON text as TF Serving writes it: rapidjson's writer and TF Serving's number formatting.

TF Serving (util/json_tensor.cc, model_servers/http_rest_api_handler.cc) writes every answer with
rapidjson's PrettyWriter and every float with its own WriteDecimal; error messages print request values
with JsonValueToString. This module reproduces all three, so answers and messages match byte for byte:

- `write_decimal` / `float_texts`: WriteDecimal for one float or a whole vector;
- `rapidjson_double`: rapidjson's Grisu2 double (inside pretty-printed values);
- `json_string`, `text_of`, `to_bytes`: string literals, keeping every byte of invalid UTF-8;
- `pretty`, `value_to_string`, `json_type`: request values as TF Serving's messages print them.
"""
from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

FLT_MAX = 3.4028234663852886e38
_FLOAT_RANGE = 3.4028234e38  # rapidjson's Value::IsFloat() bound
_U64, _D = struct.Struct("<Q"), struct.Struct("<d")

# ---------------------------------------------------------------- numbers

def write_decimal(x: float, single: bool) -> str:
    """TF Serving's WriteDecimal: "%g" if it reads back to the same float32/float64, else 9/17 digits."""
    if x != x:
        return "NaN"
    if x == math.inf:
        return "Infinity"
    if x == -math.inf:
        return "-Infinity"
    s = "%g" % x
    back = float(s)
    if single:

        with np.errstate(over="ignore"):
            same = np.float32(back) == np.float32(x)
    else:
        same = back == x
    if not same:
        s = ("%.9g" if single else "%.17g") % x
    if "." not in s and "e" not in s:
        s += ".0"
    return s


# ---------------------------------------------------------------- rapidjson's Grisu2

_M64 = (1 << 64) - 1


def _cached_power(k: int) -> tuple[int, int]:
    """10^k as (f, e), f * 2^e with 2^63 <= f < 2^64, f rounded to nearest (ties up)."""
    if k >= 0:
        n, d = 10 ** k, 1
    else:
        n, d = 1, 10 ** -k
    # n/d = 2^(e+64) * q with q in [1/2, 1): e from the bit lengths, then one correction step
    e = n.bit_length() - d.bit_length() - 64
    for _ in range(2):
        num, den = (n << -e, d) if e < 0 else (n, d << e)
        f, r = divmod(num, den)
        if 2 * r >= den:
            f += 1
        if f >= 1 << 64:
            e += 1
        elif f < 1 << 63:
            e -= 1
        else:
            return f, e
    raise AssertionError(k)


# The decimal powers Grisu2 multiplies by: 10^-348, 10^-340, ..., 10^340.
_POWERS = [_cached_power(-348 + 8 * i) for i in range(87)]
_POW10 = [10 ** i for i in range(10)]


def _mul(af: int, bf: int) -> int:
    p = af * bf  # the high 64 bits of the 128-bit product, rounded by the low half's top bit
    return (p >> 64) + ((p >> 63) & 1)


def _round_last(digits: list[int], delta: int, rest: int, ten_kappa: int, wp_w: int) -> None:
    # Moves the last digit down while that brings the value closer to w and stays inside the interval.
    while rest < wp_w and ((delta - rest) & _M64) >= ten_kappa and (
            ((rest + ten_kappa) & _M64) < wp_w or wp_w - rest > ((rest + ten_kappa - wp_w) & _M64)):
        digits[-1] -= 1
        rest += ten_kappa


def grisu2(v: float) -> tuple[str, int]:
    """rapidjson 1.1.0's Grisu2 (internal/dtoa.h) for a finite v > 0: (digits, K), v ~ digits * 10^K.
    Not always the shortest digits (Python's repr), nor always the closest: its interval is narrowed
    by an ulp of the 64-bit products on each side."""
    bits = _U64.unpack(_D.pack(v))[0]
    biased, frac = (bits >> 52) & 0x7FF, bits & ((1 << 52) - 1)
    f, e = (frac | (1 << 52), biased - 1075) if biased else (frac, -1074)
    # boundaries m+ and m- with m+ normalised to 64 bits, m- to m+'s exponent
    pf, pe = (f << 1) + 1, e - 1
    s = 64 - pf.bit_length()
    pf, pe = pf << s, pe - s
    mf, me = ((f << 2) - 1, e - 2) if f == 1 << 52 else ((f << 1) - 1, e - 1)
    mf <<= me - pe
    dk = (-61 - pe) * 0.30102999566398114 + 347
    k = int(dk)
    if dk - k > 0.0:
        k += 1
    index = (k >> 3) + 1
    K = 348 - (index << 3)
    cf, ce = _POWERS[index]
    s = 64 - f.bit_length()
    wf = _mul(f << s, cf)
    wpf = _mul(pf, cf) - 1
    wmf = _mul(mf, cf) + 1
    shift = -(pe + ce + 64)  # W, W+ and W- share this exponent
    delta = wpf - wmf
    one = 1 << shift
    wp_w = wpf - wf
    p1, p2 = wpf >> shift, wpf & (one - 1)
    kappa = 9 if p1 >= 100_000_000 else len(str(p1))
    digits: list[int] = []
    while kappa > 0:
        d, p1 = divmod(p1, _POW10[kappa - 1])
        if d or digits:
            digits.append(d)
        kappa -= 1
        rest = (p1 << shift) + p2
        if rest <= delta:
            _round_last(digits, delta, rest, _POW10[kappa] << shift, wp_w)
            return "".join(map(str, digits)), K + kappa
    while True:
        p2 *= 10
        delta *= 10
        d = p2 >> shift
        if d or digits:
            digits.append(d)
        p2 &= one - 1
        kappa -= 1
        if p2 < delta:
            _round_last(digits, delta, p2, one, (wp_w * _POW10[-kappa]) & _M64 if -kappa < 9 else 0)
            return "".join(map(str, digits)), K + kappa


def rapidjson_double(d: float) -> str:
    """rapidjson Writer::Double for a finite double: Grisu2's digits, then Prettify (internal/dtoa.h)."""
    if d == 0:
        return "-0.0" if math.copysign(1.0, d) < 0 else "0.0"
    sign = "-" if d < 0 else ""
    digits, k = grisu2(abs(d))
    n = len(digits)
    kk = n + k  # 10^(kk-1) <= |d| < 10^kk
    if 0 <= k and kk <= 21:
        out = digits + "0" * k + ".0"
    elif 0 < kk <= 21:
        out = digits[:kk] + "." + digits[kk:]
    elif -6 < kk <= 0:
        out = "0." + "0" * (-kk) + digits
    elif kk < -324:
        out = "0.0"
    elif n == 1:
        out = digits + "e" + str(kk - 1)  # rapidjson writes e.g. "e30", "e-7": no "+", no zero padding
    else:
        out = digits[0] + "." + digits[1:] + "e" + str(kk - 1)
    return sign + out


# ---------------------------------------------------------------- strings

_ESCAPES = {i: "\\u%04X" % i for i in range(0x20)}
_ESCAPES.update({0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r",
                 0x22: '\\"', 0x5C: "\\\\"})


def text_of(b: bytes | str) -> str:
    """bytes -> str keeping every byte: invalid UTF-8 survives as surrogate escapes (see `to_bytes`)."""
    if isinstance(b, str):
        return b
    return b.decode("utf-8", "surrogateescape")


def json_string(b: bytes | str) -> str:
    """A JSON string literal as rapidjson writes it: control characters, '"' and '\\' escaped."""
    return '"' + text_of(b).translate(_ESCAPES) + '"'


def to_bytes(text: str) -> bytes:
    """The inverse of `text_of`: the original bytes (a JSON-escaped lone surrogate as UTF-8 bytes)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return text.encode("utf-8", "surrogatepass")


# ---------------------------------------------------------------- pretty writer (error messages)

class _Stop(Exception):
    """rapidjson's writer refuses a non-finite double inside a value and stops writing there."""


def _is_double(v: Any) -> bool:
    # rapidjson keeps integers that fit int64/uint64 as integers, anything else as a double.
    return isinstance(v, float) or (type(v) is int and not (-(1 << 63) <= v < (1 << 64)))


def _pretty(v: Any, depth: int, out: list) -> None:
    # With a stack of its own, not recursion: a request nested 1,000 deep is printed in its error
    # message as rapidjson prints it, where recursion would stop at Python's limit (RecursionError).
    todo: list = [(v, depth)]
    size = counted = 0
    while todo:
        size += sum(map(len, out[counted:]))
        counted = len(out)
        if size >= MAX_PRETTY_CHARS:
            raise _Stop  # a bound on the work a hostile request can cause (see MAX_PRETTY_CHARS)
        item = todo.pop()
        if type(item) is str:
            out.append(item)
            continue
        v, depth = item
        if v is None:
            out.append("null")
        elif v is True:
            out.append("true")
        elif v is False:
            out.append("false")
        elif _is_double(v):
            d = float(v)
            if not math.isfinite(d):
                raise _Stop
            out.append(rapidjson_double(d))
        elif isinstance(v, int):
            out.append(str(v))
        elif isinstance(v, (str, bytes)):
            out.append(json_string(v))
        elif isinstance(v, (list, dict)):
            if not v:
                out.append("[]" if isinstance(v, list) else "{}")
                continue
            is_list = isinstance(v, list)
            out.append("[" if is_list else "{")
            todo.append("\n" + "    " * depth + ("]" if is_list else "}"))
            inner = "\n" + "    " * (depth + 1)
            members = list(enumerate(v)) if isinstance(v, list) else list(enumerate(v.items()))
            for i, member in reversed(members):
                todo.append((member, depth + 1) if is_list else (member[1], depth + 1))
                todo.append(("," if i else "") + inner + ("" if is_list else json_string(member[0]) + ": "))
        else:  # numpy scalars and the like, should a caller pass them
            out.append(str(v))


# TF Serving 2.18 (util/json_tensor.cc: JsonWriterWithLimit) stops writing a request into an error
# message after 256 bytes; the messages here are the full ones of earlier versions. Without a bound a
# request nested 500,000 deep (which the reader accepts, as rapidjson's iterative parser does) would
# take quadratic time and memory in its indentation, so the text stops after this many characters.
MAX_PRETTY_CHARS = 1 << 20


def pretty(v: Any) -> str:
    """rapidjson PrettyWriter text of a JSON value (4-space indent)."""
    out: list = []
    try:
        _pretty(v, 0, out)
    except _Stop:
        pass
    return "".join(out)


def value_to_string(v: Any) -> str:
    """TF Serving's JsonValueToString: a top-level double is written with WriteDecimal (as a float
    when it fits the float range), anything else with the pretty writer."""
    if _is_double(v):
        d = float(v)
        if -_FLOAT_RANGE <= d <= _FLOAT_RANGE:

            return write_decimal(float(np.float32(d)), single=True)
        return write_decimal(d, single=False)
    return pretty(v)


def json_type(v: Any) -> str:
    """rapidjson's type names as TF Serving prints them."""
    if v is None:
        return "Null"
    if v is True:
        return "True"
    if v is False:
        return "False"
    if isinstance(v, dict):
        return "Object"
    if isinstance(v, list):
        return "Array"
    if isinstance(v, str):
        return "String"
    return "Number"


# Up to this many values, numpy's per-call overhead costs more than a plain loop (measured for
# float32: 10 values 14 us vectorised, 7 us looped; 100 values 64 vs 69 us; 1,000 values 0.59 vs 0.70 ms).
_SMALL_FLOATS = 64
_F32 = struct.Struct("f")


def float_texts(flat: np.ndarray, single: bool) -> list[str]:
    """WriteDecimal for every value of a float32 (single) or float64 vector, vectorised where it can be:
    "%g" for all, one numpy pass to find those that do not read back, 9/17 digits for those."""
    values = flat.tolist()
    if len(values) <= _SMALL_FLOATS:
        return _float_texts_looped(values, single)
    texts = ["%g" % v for v in values]
    with np.errstate(over="ignore", invalid="ignore"):
        back = np.array(list(map(float, texts)))
        if single:
            back = back.astype(np.float32)
        finite = np.isfinite(flat)
        good = (back == flat) & finite
        whole = np.flatnonzero(finite & (flat == np.trunc(flat))).tolist()
    if not good.all():
        fmt = "%.9g" if single else "%.17g"
        for i in np.flatnonzero(~good).tolist():
            v = values[i]
            if v != v:
                texts[i] = "NaN"
            elif v == math.inf:
                texts[i] = "Infinity"
            elif v == -math.inf:
                texts[i] = "-Infinity"
            else:
                texts[i] = fmt % v
    for i in whole:
        t = texts[i]
        if "." not in t and "e" not in t:
            texts[i] = t + ".0"
    return texts


def _float_texts_looped(values: list[float], single: bool) -> list[str]:
    """float_texts for a short list, one value at a time (the same texts; tests compare the two)."""
    fmt = "%.9g" if single else "%.17g"
    pack, unpack = _F32.pack, _F32.unpack
    texts = []
    for v in values:
        if v != v:
            texts.append("NaN")
            continue
        if v == math.inf or v == -math.inf:
            texts.append("Infinity" if v > 0 else "-Infinity")
            continue
        t = "%g" % v
        back = float(t)
        if single:
            try:
                back = unpack(pack(back))[0]  # rounded to float32, as the value was
            except OverflowError:
                back = math.inf
        if back != v:
            t = fmt % v
        if v.is_integer() and "." not in t and "e" not in t:
            t += ".0"
        texts.append(t)
    return texts
