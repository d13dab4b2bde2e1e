"""server/rest/json_numbers.py: RISKY, the numbers orjson may read otherwise than rapidjson."""
import random
import re

from server.rest.json_numbers import RISKY


def _risky(text: bytes) -> bool:
    """RISKY's definition, spelled out: 16 digits in a row, each pair at most one '.' apart, or a digit
    right before an 'e' or 'E'."""
    for i in range(len(text)):
        if chr(text[i]).isdigit() and text[i + 1:i + 2] in (b"e", b"E"):
            return True
        digits, j = 0, i
        while j < len(text) and chr(text[j]).isdigit():
            digits += 1
            if digits == 16:
                return True
            j += 1
            if text[j:j + 1] == b"." and text[j + 1:j + 2].isdigit():
                j += 1
    return False


def test_risky_examples():
    assert RISKY.search(b"[0.12345678901234]") is None  # 15 digits
    assert RISKY.search(b"[0.123456789012345]")  # 16
    assert RISKY.search(b"[12345678.12345678]")  # 16 across the point
    assert RISKY.search(b"[1e5]") and RISKY.search(b"[1.5E-3]")
    assert RISKY.search(b'{"e": 1, "x": "abc"}') is None
    assert RISKY.search(b"[1234567890, 123456]") is None  # digits of different numbers
    assert RISKY.search(b'["12345678901234567"]')  # inside strings too


def test_risky_matches_its_definition():
    rng = random.Random(7)
    for _ in range(3000):
        text = bytes(rng.choice(b"0123456789.eE,- ") for _ in range(rng.randint(0, 40)))
        assert (RISKY.search(text) is not None) == _risky(text), text
    # the pattern as first written, which scanned every byte: the same answers
    first = re.compile(rb"(?:[0-9]\.?){16}|[0-9][eE]")
    for _ in range(3000):
        text = bytes(rng.choice(b"0123456789..eE") for _ in range(rng.randint(0, 40)))
        assert (RISKY.search(text) is None) == (first.search(text) is None), text
