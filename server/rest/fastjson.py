"""The common predict body read straight from its bytes: a dense nested JSON array of numbers.

A request like {"signature_name": "call", "instances": <100x28x28x1 numbers>} is mostly one array of
numbers. Parsing it into nested Python lists (78,400 one-element lists for MNIST) and handing those to
numpy costs far more than running the model. This module reads such an array with a few passes of
C-speed bytes operations and one flat orjson parse, or answers None when the text is anything else
(strings, NaN/Infinity, true/false, objects, ragged or empty lists, malformed JSON), so that the
caller runs the ordinary parser, which gives TF Serving's exact answer or error.

- `find_array(body, key)`: where the array value of a top-level `"key"` member seems to be;
- `read_array(text)`: (flat float64 array of its numbers, shape) for a dense nested numeric array, else None;
- `exact_as_rapidjson(text)` / `same_float32(values)`: whether orjson's numbers are rapidjson's
  (json_numbers.py), or at least round to the same float32 values.

Pure functions on bytes; rest/predict_request.py decides when the result may be used (dtype, range).
"""
from __future__ import annotations

import math

import numpy as np
import orjson

from .json_numbers import RISKY

NUMBER_CHARS = b"0123456789.eE+-"
JSON_WS = b" \t\n\r"
MAX_RANK = 32  # deeper arrays go the ordinary way (and stay far from orjson's nesting limit)

_OPEN, _CLOSE, _COMMA, _NUM = b"[", b"]", b",", b"0"
_ORD_OPEN, _ORD_CLOSE, _ORD_NUM = _OPEN[0], _CLOSE[0], _NUM[0]

# One translate pass: every number character becomes "0", brackets and commas stay, whitespace is
# deleted (by translate's second argument) and anything else becomes "x", which rules the text out.
_squeeze = bytearray(b"x" * 256)
for _c in NUMBER_CHARS:
    _squeeze[_c] = _ORD_NUM
for _c in b"[],":
    _squeeze[_c] = _c
_SQUEEZE = bytes(_squeeze)
# Brackets blanked: what is left is the numbers and the commas between them.
_BLANK_BRACKETS = bytes.maketrans(b"[]", b"  ")


def find_array(body: bytes, key: bytes) -> tuple[int, int] | None:
    """(start, end) such that body[start:end] may be the array value of the member `"key"`.

    Only a guess from the bytes: the text after `"key"`, whitespace and ':' must start with '['; it
    runs to the next '"' or '}' (neither can occur inside a numeric array), less trailing whitespace
    and commas. The caller must check that this really is the top-level member (predict_request.parse_predict
    parses the rest of the body) and that the text is a well-formed array (`read_array`).
    """
    quoted = b'"' + key + b'"'
    at = body.find(quoted)
    for _ in range(4):  # the name may also appear as a string value, e.g. {"note": "instances", ...}
        if at < 0:
            return None
        i = _skip_ws(body, at + len(quoted))
        if body[i:i + 1] == b":":
            start = _skip_ws(body, i + 1)
            if body[start:start + 1] == _OPEN:
                end = len(body)
                for stop in (b'"', b"}"):
                    j = body.find(stop, start)
                    if 0 <= j < end:
                        end = j
                while end > start and body[end - 1] in b" \t\n\r,":
                    end -= 1
                return start, end
        at = body.find(quoted, at + 1)
    return None


def _skip_ws(body: bytes, i: int) -> int:
    n = len(body)
    while i < n and body[i] in JSON_WS:
        i += 1
    return i


def read_array(text: bytes) -> tuple[np.ndarray, tuple[int, ...]] | None:
    """A dense nested JSON array of numbers -> (its numbers in row-major order, its shape); else None.

    None for anything that is not exactly that: other tokens, ragged or empty lists, numbers outside
    the innermost lists, malformed numbers or separators. The numbers are float64, float() of orjson's
    int or float, as a full orjson parse of the same text would give them.
    """
    if len(text) < 2 or text[:1] != _OPEN or text[-1:] != _CLOSE:
        return None
    skeleton = _skeleton(text)  # brackets and commas only, e.g. b"[[,],[,]]"
    if skeleton is None:  # other tokens (a string, NaN, true...), or a number beside a bracket
        return None
    shape = _shape_of(skeleton)
    if shape is None:  # ragged, empty, unbalanced, too deep
        return None
    # The skeleton is regular and numbers stand only between '[' or ',' and ',' or ']', so blanking the
    # brackets leaves one comma-separated item per slot; orjson checks each is one valid JSON number.
    # (Blanks rather than deletion, so "[1 [2]]" cannot turn into the number 12.)
    values = _numbers(text, math.prod(shape))
    if values is None:
        return None
    return values, shape


# Work on big bodies is done this many numbers (or bytes of text) at a time, so that what one step
# makes (orjson's Python floats, numpy temporaries) stays in the CPU's caches and is reused from the
# allocator's free lists: parsed in one piece, a 1,000-image body (784,000 floats) cost about twice as
# much per number as a 100-image one (measured: orjson + fromiter 46 vs 25 us per image).
_STEP = 1 << 16
# Bodies up to this size are read in one piece (each step costs copies of its text: in steps, 100-image
# bodies were 7% slower end to end).
_ONE_PIECE = 1 << 20


def _numbers(items: bytes, count: int) -> np.ndarray | None:
    """`count` comma-separated JSON numbers (brackets around them are blanked) -> float64 array (as
    Python's float() of orjson's int or float), or None when an item is not one valid JSON number or the
    count differs."""
    end, i, k = len(items), 0, 0
    step = _STEP if end > _ONE_PIECE else end
    out = None
    while True:
        j = items.find(b",", i + step) if i + step < end else -1
        if j < 0:
            j = end
        piece = items[i:j].translate(_BLANK_BRACKETS)
        if not piece.strip():  # an empty item (a trailing comma) would parse as an empty list
            return None
        try:
            values = orjson.loads(b"[" + piece + b"]")
            n = len(values)
            if k + n > count:
                return None
            part = np.fromiter(values, np.float64, n)  # faster than from the list itself
        except (orjson.JSONDecodeError, OverflowError, TypeError, ValueError):
            return None
        if out is None:
            if j == end:  # the whole text in one piece: that array is the answer
                return part if n == count else None
            out = np.empty(count, np.float64)
        out[k:k + n] = part
        k += n
        if j == end:
            return out if k == count else None
        i = j + 1


def _skeleton(text: bytes) -> bytes | None:
    """The brackets and commas of `text`, or None when it holds anything but numbers, brackets, commas
    and whitespace, or a number right before a '[' or right after a ']'. In steps (see _STEP)."""
    parts = []
    last = b""  # the last squeezed byte so far: the pair across a seam is checked too
    step = _STEP * 4 if len(text) > _ONE_PIECE else max(len(text), 1)
    for start in range(0, len(text), step):
        squeezed = text[start:start + step].translate(_SQUEEZE, JSON_WS)
        if b"x" in squeezed:
            return None
        if not _numbers_only_in_innermost_lists(last + squeezed):
            return None
        if squeezed:
            last = squeezed[-1:]
        parts.append(squeezed.translate(None, _NUM))
    return b"".join(parts)


def _shape_of(skeleton: bytes) -> tuple[int, ...] | None:
    """The shape whose regular skeleton `skeleton` is, or None if it is no regular skeleton."""
    rank = 0  # the leading '[' (counted here: lstrip would copy the whole skeleton)
    while rank < len(skeleton) and skeleton[rank] == _ORD_OPEN:
        rank += 1
        if rank > MAX_RANK:
            return None
    if rank == 0:
        return None
    # Guess each size from the first list at each depth (0: the whole array). That list starts at
    # index `depth` and ends with the first run of rank-depth ']' (deeper lists close with fewer).
    # A list of `size` items, each `inner` bytes long, is 1 + size * (inner + 1) bytes: "[" items
    # and commas "]"; the numbers themselves left nothing in the skeleton (inner = 0).
    lengths = [len(skeleton)] + [0] * rank
    for depth in range(1, rank):
        closes = rank - depth
        end = skeleton.find(_CLOSE * closes)
        if end < 0:
            return None
        lengths[depth] = end + closes - depth
    shape = []
    for depth in range(rank):
        size, rest = divmod(lengths[depth] - 1, lengths[depth + 1] + 1)
        if rest or size < 1:
            return None
        shape.append(size)
    # The guess is right only if the skeleton is exactly the regular one of that shape: one memcmp.
    if skeleton != regular_skeleton(shape):
        return None
    return tuple(shape)


def regular_skeleton(shape: list[int] | tuple[int, ...]) -> bytes:
    """The brackets and commas of a dense array of `shape` (every size >= 1): (2, 2) -> b"[[,],[,]]"."""
    text = _OPEN + _COMMA * (shape[-1] - 1) + _CLOSE
    for size in reversed(shape[:-1]):
        text = _OPEN + (text + _COMMA) * (size - 1) + text + _CLOSE
    return text



def _numbers_only_in_innermost_lists(squeezed: bytes) -> bool:
    """No number right before a '[' or right after a ']' (whitespace already removed).

    With a regular skeleton, that leaves numbers only where JSON allows them, between '[' or ','
    and ',' or ']'. One vectorised pass instead of bytes searches, which crawl over the many "0"s:
    the squeezed text holds only "0", "[", "]" and ",", and of the differences between neighbours
    only "0[" gives ord('[') - ord('0') = 43 and only "]0" gives ord('0') - ord(']') = -45.
    """
    a = np.frombuffer(squeezed, np.int8)
    step = a[1:] - a[:-1]  # within -49..49: no int8 wrap-around
    return not ((step == _ORD_OPEN - _ORD_NUM) | (step == _ORD_NUM - _ORD_CLOSE)).any()


def exact_as_rapidjson(text: bytes) -> bool:
    """No number in `text` that rapidjson may read differently from orjson (json_numbers.RISKY)."""
    return RISKY.search(text) is None


# rapidjson's reading of a number is within a few ulps of the exactly rounded double (at most 17
# digits gathered, one rounding per digit beyond 2^53, one table power of ten, one product).
_ULPS = 16 * 2.0 ** -52


def same_float32(values: np.ndarray, as_float32: np.ndarray | None = None) -> bool:
    """Every double, moved by up to 16 ulps either way, still rounds to the same float32: then its
    float32 is the same whether orjson or rapidjson read the number. False near float32 midpoints
    and for tiny (subnormal-range) doubles. `as_float32`: values.astype(np.float32), when the caller
    has it; then the common case below (every double a float32 value) is one comparison, no steps."""
    if as_float32 is not None and (as_float32 == values).all():
        return True
    with np.errstate(over="ignore"):
        for start in range(0, len(values), _STEP):
            part = values[start:start + _STEP]
            if (part.astype(np.float32) == part).all():
                # Each double is a float32 value (what clients send of float32 tensors): 2^28 double ulps
                # from any float32 midpoint, so a few ulps either way round to the same float32. Cheaper
                # than the general check below (single images: about a tenth of their parse time).
                continue
            a = np.abs(part)
            if np.any((a < 1e-300) & (a != 0)):
                return False
            lo = (a * (1 - _ULPS)).astype(np.float32)
            hi = (a * (1 + _ULPS)).astype(np.float32)
            if not np.array_equal(lo, hi):
                return False
    return True
