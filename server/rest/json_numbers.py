"""Numbers as rapidjson 1.1.0 reads them (reader.h: ParseNumber, internal/strtod.h), bit for bit.

Without kParseFullPrecisionFlag rapidjson is not exactly rounded: it gathers up to 17 significant digits
in a double and multiplies or divides by a table power of ten, so a long number can come out one ulp
away from the nearest double. Integers stay integers up to int64/uint64; longer ones are gathered in a
double; exponents beyond the double range are "Number too big to be stored in double.".

- `read_number(data, i, fail)`: the number (or NaN/Inf spelling) at data[i] -> (value, end);
- `plain_numbers(data, i, end, fail)`: the values of a run of comma-terminated numbers;
- `orjson_agrees(text, doc)`: whether orjson's reading of `text` is exactly rapidjson's.
"""
from __future__ import annotations

import re
from typing import Any, Callable, cast

import orjson

TOO_BIG = "Number too big to be stored in double."
MISS_FRACTION = "Miss fraction part in number."
MISS_EXPONENT = "Miss exponent in number."
INVALID_VALUE = "Invalid value."

_POW10 = [float(f"1e{k}") for k in range(309)]
_NEAR_MAX = 1.7976931348623157e307  # DBL_MAX / 10
_SAFE_SIGNIFICAND = (1 << 53) - 1
_NAN, _INF = float("nan"), float("inf")
# Where orjson's exactly rounded reading may differ from rapidjson's: 16 or more digits (a long
# significand, or an integer beyond uint64) or an exponent. Anywhere in the text, strings included.
# Written to start with a digit: the regex engine then skips every other byte quickly (2.5x faster
# over a single image's text than the same pattern written (?:[0-9]\.?){16}|[0-9][eE]).
RISKY = re.compile(rb"[0-9](?:[eE]|(?:\.?[0-9]){15})")
_DIGITS = re.compile(rb"[0-9]*")
_digits_at = cast("Callable[[bytes, int], re.Match[bytes]]", _DIGITS.match)  # matches "": never None
_TOKEN = re.compile(rb"-?[0-9][0-9.eE+-]*")


def _fast_path(d: float, p: int) -> float:
    if p < -308:
        return 0.0
    return d * _POW10[p] if p >= 0 else d / _POW10[-p]


def _strtod(d: float, p: int) -> float:
    if p < -308:
        return _fast_path(_fast_path(d, -308), p + 308)
    return _fast_path(d, p)


def read_number(s: bytes, i: int, fail: Callable[[str, int], Any]) -> tuple[Any, int]:
    """rapidjson's ParseNumber (with kParseNanAndInfFlag) at s[i]: (value, index after it)."""
    n = len(s)
    start = i
    minus = i < n and s[i] == 0x2D
    if minus:
        i += 1
    c = s[i] if i < n else 0
    digits = 0  # rapidjson's significandDigit
    use_double = False
    d = 0.0
    nan_or_inf = False
    if c == 0x30:
        v = 0
        i += 1
    elif 0x31 <= c <= 0x39:
        end = _digits_at(s, i).end()
        text = s[i:end]
        limit = (1 << 63) if minus else (1 << 64) - 1
        if len(text) <= 19 or int(text[:20]) <= limit:
            v = int(text) if len(text) <= 20 else limit + 1
        else:
            v = limit + 1
        if v <= limit:
            digits = len(text) - 1
            i = end
        else:  # beyond int64/uint64: the digits that fit, then the rest gathered in a double
            k = 1
            while int(text[:k + 1]) <= limit:
                k += 1
            digits = k - 1
            d = float(int(text[:k]))
            use_double = True
            for ch in text[k:]:
                if d >= _NEAR_MAX:
                    fail(TOO_BIG, start)
                d = d * 10 + (ch - 0x30)
            i = end
    elif c == 0x4E or c == 0x49:  # 'N', 'I': the same Consume chain as rapidjson's
        nan_or_inf = True
        v = 0
        j = i
        if s[j:j + 1] == b"N":
            j += 1
            if s[j:j + 1] == b"a":
                j += 1
                if s[j:j + 1] == b"N":
                    d, i = _NAN, j + 1
        if d != d:
            pass
        else:
            if s[j:j + 1] == b"I":
                j += 1
                if s[j:j + 1] == b"n":
                    j += 1
                    if s[j:j + 1] == b"f":
                        j += 1
                        d = -_INF if minus else _INF
                        if s[j:j + 1] == b"i":
                            for ch in b"inity":
                                if s[j:j + 1] != bytes((ch,)):
                                    fail(INVALID_VALUE, j)
                                j += 1
                        i = j
            if d == 0.0:
                fail(INVALID_VALUE, j)
    else:
        fail(INVALID_VALUE, i)
    exp_frac = 0
    if s[i:i + 1] == b".":
        i += 1
        end = _digits_at(s, i).end()
        if end == i:
            fail(MISS_FRACTION, i)
        frac = s[i:end]
        k = 0
        if not use_double:
            i64 = v
            while k < len(frac) and i64 <= _SAFE_SIGNIFICAND:
                i64 = i64 * 10 + (frac[k] - 0x30)
                k += 1
                exp_frac -= 1
                if i64:
                    digits += 1
            d = float(i64)
            use_double = True
        for ch in frac[k:]:
            if digits < 17:
                d = d * 10.0 + (ch - 0x30)
                exp_frac -= 1
                if d > 0.0:
                    digits += 1
        i = end
    exp = 0
    if s[i:i + 1] in (b"e", b"E"):
        i += 1
        if not use_double:
            d = float(v)
            use_double = True
        exp_minus = s[i:i + 1] == b"-"
        if exp_minus or s[i:i + 1] == b"+":
            i += 1
        end = _digits_at(s, i).end()
        if end == i:
            fail(MISS_EXPONENT, i)
        text = s[i:end]
        if exp_minus:
            exp = 0
            for ch in text:
                exp = exp * 10 + (ch - 0x30)
                if exp >= 214748364:
                    break
            exp = -exp
        else:
            max_exp = 308 - exp_frac
            exp = text[0] - 0x30
            for ch in text[1:]:
                exp = exp * 10 + (ch - 0x30)
                if exp > max_exp:
                    fail(TOO_BIG, start)
        i = end
    if use_double:
        d = _strtod(d, exp + exp_frac)
        return (-d if minus else d), i
    if nan_or_inf:
        return d, i
    return (-v if minus else v), i


def plain_numbers(s: bytes, i: int, end: int, fail: Callable[[str, int], Any]) -> list:
    """The values of s[i:end], plain JSON numbers each followed by a comma (and whitespace)."""
    text = s[i:end]
    if RISKY.search(text) is None:  # at most 15 digits, no exponent: orjson's reading is exact
        return orjson.loads(b"[" + text.rstrip(b" \t\n\r")[:-1] + b"]")
    return [read_number(s, m.start(), fail)[0] for m in _TOKEN.finditer(s, i, end)]


def _members_and_colons(doc: Any) -> int:
    """Object members plus ':' characters inside strings (names and values), all through `doc`."""
    total = 0
    stack = [doc]
    while stack:
        v = stack.pop()
        if type(v) is dict:
            total += len(v)
            for k, e in v.items():
                total += k.count(":")
                t = type(e)
                if t is dict or t is list:
                    stack.append(e)
                elif t is str:
                    total += e.count(":")
        else:
            for e in v:
                t = type(e)
                if t is dict or t is list:
                    stack.append(e)
                elif t is str:
                    total += e.count(":")
    return total


def orjson_agrees(text: bytes, doc: Any) -> bool:
    """True when orjson's value for `text` (which it read without error) is rapidjson's.

    orjson rounds numbers exactly and keeps the last of repeated names; rapidjson does neither.
    Numbers: only those `RISKY` finds can differ. Names: every member has one ':' outside strings,
    so the ':' bytes of the text are its members plus the ':' in its strings; with no ':' escaped as
    \\u003a, fewer members in `doc` than that means a repeated name was dropped.
    """
    if RISKY.search(text) is not None:
        return False
    colons = text.count(b":")
    if type(doc) is not dict and type(doc) is not list:
        return colons == 0 or type(doc) is str
    if type(doc) is dict and colons == len(doc) and text.count(b"{") == 1:
        return True  # one object, no ':' in any string: no room for a repeated name
    if b"\\u003" in text or b"\\u003" in text.upper():
        return False
    return _members_and_colons(doc) == colons


def exact_enough(token: str) -> bool:
    """Whether rapidjson's reading of this plain number is exactly rounded, as float()'s is: a
    significand below 2^53 divided by at most 10^22 (one correctly rounded division), no exponent."""
    if "e" in token or "E" in token:
        return False
    whole, dot, fraction = token.lstrip("-").partition(".")
    return len(fraction) <= 22 and len(whole) + len(fraction) <= 19 and int(whole + fraction) <= _SAFE_SIGNIFICAND
