"""server/rest/fastjson.py: finding and reading a dense numeric JSON array straight from the bytes."""
import numpy as np
import orjson
import pytest

from server.rest import fastjson


@pytest.mark.parametrize("text,expected", [
    (b"[1]", ([1], (1,))),
    (b"[[1, 2.5], [-3e2, 0]]", ([1, 2.5, -300.0, 0], (2, 2))),
    (b"[ [ [ 1 ] ] ,\n [ [ 2 ] ] ]", ([1, 2], (2, 1, 1))),
    (b"[[1,2,3]]", ([1, 2, 3], (1, 3))),
    (b"[]", None), (b"[[]]", None), (b"[[1],[]]", None), (b"[[1,2],[3]]", None), (b"[1,[2]]", None),
    (b"[1[2]]", None), (b"[[1]2]", None), (b"[[1],1[]]", None), (b"[[1]]2", None), (b"[1 2]", None),
    (b'[1,"2"]', None), (b"[NaN]", None), (b"[1]]", None), (b"[[1]", None), (b"1", None), (b"", None),
    # an empty slot beside a stray number: the items still count right, only the bracket check refuses
    (b"[[5,]5]", None), (b"[5[,5]]", None),
])
@pytest.mark.parametrize("one_piece", [True, False], ids=["one piece", "in steps"])
def test_read_array(text, expected, one_piece, monkeypatch):
    if not one_piece:  # the path of bodies over _ONE_PIECE bytes, on the same small texts
        monkeypatch.setattr(fastjson, "_ONE_PIECE", 0)
    got = fastjson.read_array(text)
    if expected is None:
        assert got is None
    else:
        assert got is not None and got[0].dtype == np.float64 and (got[0].tolist(), got[1]) == expected


def test_read_array_in_steps():
    # bodies of several steps (fastjson._STEP bytes of text): the same numbers as one orjson parse
    rng = np.random.default_rng(1)
    values = (rng.random(3 * fastjson._STEP) * 10.0 ** rng.integers(-8, 8, 3 * fastjson._STEP)).tolist()
    values[5::7] = [int(v * 1000) for v in values[5::7]]
    text = orjson.dumps([values[i:i + 6] for i in range(0, len(values), 6)])
    got, shape = fastjson.read_array(text)
    flat = orjson.loads(b"[" + text.replace(b"[", b"").replace(b"]", b"") + b"]")
    assert shape == (len(values) // 6, 6) and got.tolist() == [float(v) for v in flat]
    # one bad item anywhere, at a seam or not, refuses the whole array
    for at in (1, fastjson._STEP - 1, fastjson._STEP, fastjson._STEP + 1, 2 * fastjson._STEP + 5, len(text) - 3):
        comma = text.find(b",", at)
        assert fastjson.read_array(text[:comma] + b",--" + text[comma + 1:]) is None  # "--950.4"
        assert fastjson.read_array(text[:comma] + b",00" + text[comma + 1:]) is None  # a leading zero
    # the skeleton is read in steps of 4 * _STEP bytes: a bad token or a number beside a bracket at a seam
    seam = 4 * fastjson._STEP
    for at in (seam - 1, seam, seam + 1, 2 * seam):
        comma = text.find(b",", at)
        assert fastjson.read_array(text[:comma] + b",x" + text[comma + 1:]) is None
        close = text.find(b"],[", at)
        assert fastjson.read_array(text[:close + 1] + b"1,[" + text[close + 3:]) is None  # "]1"
        assert fastjson.read_array(text[:close] + b",1[" + text[close + 2:]) is None  # "1["
    for pad in range(1, 8):  # whitespace between items, across a seam or not, changes nothing
        comma = text.find(b",", seam - 8 * pad)
        spaced = text[:comma + 1] + b" \n" * (8 * pad) + text[comma + 1:]
        assert fastjson.read_array(spaced)[1] == shape
    # same_float32 looks at every step
    floats = np.full(3 * fastjson._STEP, 0.5)
    assert fastjson.same_float32(floats)
    floats[-1] = 1 + 2.0 ** -24  # a float32 midpoint
    assert not fastjson.same_float32(floats)


def test_numbers_only_in_innermost_lists():
    # every pair of the squeezed alphabet ("0" for a number character): only "0[" and "]0" are refused
    for a in b"0[],":
        for b in b"0[],":
            pair = bytes((a, b))
            assert fastjson._numbers_only_in_innermost_lists(b"[" + pair + b"]") is (pair not in (b"0[", b"]0"))
    assert fastjson._numbers_only_in_innermost_lists(b"") and fastjson._numbers_only_in_innermost_lists(b"0")


def test_regular_skeleton():
    assert fastjson.regular_skeleton((2, 2)) == b"[[,],[,]]"
    assert fastjson.regular_skeleton((3,)) == b"[,,]"
    assert fastjson.regular_skeleton((1, 2, 1)) == b"[[[],[]]]"


def test_find_array():
    body = b'{"signature_name": "instances", "instances" : [[1, 2]] , "x": 1}'
    start, end = fastjson.find_array(body, b"instances")
    assert body[start:end] == b"[[1, 2]]"
    assert fastjson.find_array(b'{"instances": 5}', b"instances") is None
    assert fastjson.find_array(b'{"inputs": [1]}', b"instances") is None
    start, end = fastjson.find_array(b'{"inputs": [1,\n2]\n}', b"inputs")
    assert (start, end) == (11, 17)


def test_same_float32():
    import numpy as np
    # float32 values (a float32 tensor's tolist()): always the same float32, whoever reads the text
    float32s = np.array([0.0, 1.0, -2.5, 1e-40, 3.4e38], np.float32).astype(np.float64)
    assert fastjson.same_float32(float32s)
    # a double a few ulps from a float32 midpoint: rapidjson's few-ulps error may round it either way
    one = np.float32(1.0)
    midpoint = (float(one) + float(np.nextafter(one, np.float32(2)))) / 2
    near = np.array([0.5, np.nextafter(midpoint, 2.0)])
    assert not fastjson.same_float32(near)
    # doubles far from any midpoint, though not float32 values: still the same float32
    assert fastjson.same_float32(np.array([0.1, 0.2, 1 / 3]))
    # a double in the subnormal range: refused (rapidjson's error is not a few ulps there)
    assert not fastjson.same_float32(np.array([1e-310]))
    # the same answers when the caller hands in its float32 copy
    for values in (float32s, near, np.array([0.1, 0.2, 1 / 3]), np.array([1e-310])):
        with np.errstate(over="ignore"):
            as_float32 = values.astype(np.float32)
        assert fastjson.same_float32(values, as_float32) == fastjson.same_float32(values)
