"""server/core/values.py against REST_API.md §12.3/§12.4, STORAGE.md §6.3/§6.4 and
the HSDS 1.0.2 fixture."""
import base64
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.core import types as T
from server.core import values as V
from server.core.errors import BadRequest

from conftest import FIXTURE

VSTR_UTF8 = {"class": "H5T_STRING", "charSet": "H5T_CSET_UTF8",
             "strPad": "H5T_STR_NULLTERM", "length": "H5T_VARIABLE"}
VSTR_ASCII = {"class": "H5T_STRING", "charSet": "H5T_CSET_ASCII",
              "strPad": "H5T_STR_NULLTERM", "length": "H5T_VARIABLE"}


def fstr(n, utf8=False):
    return {"class": "H5T_STRING", "charSet": "H5T_CSET_UTF8" if utf8 else "H5T_CSET_ASCII",
            "strPad": "H5T_STR_NULLPAD", "length": n}


def num(name):
    return T.normalize_type(name)


I32 = num("H5T_STD_I32LE")
F32 = num("H5T_IEEE_F32LE")
F64 = num("H5T_IEEE_F64LE")
BOOL = {"class": "H5T_ENUM", "base": {"class": "H5T_INTEGER", "base": "H5T_STD_I8LE"},
        "mapping": {"FALSE": 0, "TRUE": 1}}
REF = {"class": "H5T_REFERENCE", "base": "H5T_STD_REF_OBJ", "charSet": "H5T_CSET_ASCII",
       "length": 48, "strPad": "H5T_STR_NULLPAD"}
REGREF = {"class": "H5T_REFERENCE", "base": "H5T_STD_REF_DSETREG"}
VLEN_I32 = {"class": "H5T_VLEN", "size": "H5T_VARIABLE", "base": "H5T_STD_I32"}
GID = "g-83d8d88d-2f87bd91-a2f7-ab16c1-583291"
DID = "d-83d8d88d-2f87bd91-5613-0fdb84-64f7f4"


def same(a, b):
    """JSON equality where NaN == NaN, and bool/int/float are not mixed."""
    if isinstance(a, list) or isinstance(b, list):
        return (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
                and all(same(x, y) for x, y in zip(a, b)))
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return type(a) is type(b) and a == b


def roundtrip(value, t, shape, expect=None):
    """JSON -> numpy -> JSON and numpy -> bytes -> numpy -> JSON."""
    arr = V.from_json(value, t, shape)
    assert arr.shape == T.full_shape(t, shape)
    out = V.to_json(arr, t)
    assert same(out, value if expect is None else expect), (out, value)
    for wire in (True, False):
        data = V.to_bytes(arr, t, wire=wire)
        back = V.from_bytes(data, t, shape)
        assert back.shape == arr.shape
        assert same(V.to_json(back, t), out)
    return arr


# ---- numbers ------------------------------------------------------------------

INT_NAMES = [f"H5T_STD_{s}{b}{o}" for s in "IU" for b in (8, 16, 32, 64) for o in ("LE", "BE")]
FLOAT_NAMES = [f"H5T_IEEE_F{b}{o}" for b in (16, 32, 64) for o in ("LE", "BE")]


@pytest.mark.parametrize("name", INT_NAMES)
def test_int_limits_roundtrip(name):
    t = num(name)
    info = np.iinfo(T.dtype_of(t))
    value = [int(info.min), int(info.max), 0, 1, int(info.max) // 3]
    arr = roundtrip(value, t, (5,))
    assert arr.dtype == T.dtype_of(t)
    assert all(type(v) is int for v in V.to_json(arr, t))


@pytest.mark.parametrize("name", FLOAT_NAMES)
def test_float_specials_roundtrip(name):
    t = num(name)
    value = [0.5, -2.0, float("nan"), float("inf"), float("-inf"), 0.0]
    roundtrip(value, t, (2, 3), expect=[value[:3], value[3:]])


def test_u64_max_intact():
    t = num("H5T_STD_U64LE")
    arr = V.from_json([2 ** 64 - 1, 2 ** 63 + 1], t, (2,))
    assert V.to_json(arr, t) == [2 ** 64 - 1, 2 ** 63 + 1]
    assert V.to_bytes(arr, t) == b"\xff" * 8 + (2 ** 63 + 1).to_bytes(8, "little")


def test_big_endian_bytes():
    t = num("H5T_STD_I32BE")
    arr = V.from_json([0, 1000], t, (2,))
    assert V.to_bytes(arr, t) == bytes.fromhex("00000000 000003e8")
    assert V.to_json(V.from_bytes(bytes.fromhex("000003e8"), t, 1), t) == [1000]
    t = num("H5T_IEEE_F64BE")
    assert V.to_bytes(V.from_json(1.0, t, ()), t) == bytes.fromhex("3ff0000000000000")


def test_little_endian_bytes():
    arr = V.from_json([2, 3, 5, 7, 11, 13], I32, (6,))
    assert V.to_bytes(arr, I32) == np.array([2, 3, 5, 7, 11, 13], "<i4").tobytes()
    assert len(V.to_bytes(arr, I32)) == 24


def test_float32_json_is_nearest_double():
    arr = V.from_json([0.1], F32, (1,))
    assert V.to_json(arr, F32) == [0.10000000149011612]
    t16 = num("H5T_IEEE_F16LE")
    assert V.to_json(V.from_json(0.1, t16, ()), t16) == float(np.float16(0.1))


def test_nan_ignore_nan():
    arr = V.from_json([[1.5, float("nan")], [float("inf"), 2]], F64, (2, 2))
    assert V.to_json(arr, F64, ignore_nan=True) == [[1.5, None], [float("inf"), 2.0]]
    out = V.to_json(arr, F64)
    assert math.isnan(out[0][1])
    assert V.to_json(V.from_json(float("nan"), F32, ()), F32, ignore_nan=True) is None
    assert V.to_json(V.from_json(1.0, F32, ()), F32, ignore_nan=True) == 1.0


def test_nan_string_accepted_for_floats():
    assert math.isnan(V.to_json(V.from_json("nan", F32, ()), F32))
    assert V.to_json(V.from_json(["NaN", "Infinity", "-Infinity"], F64, (3,)), F64)[1:] == \
        [float("inf"), float("-inf")]


def test_scalar_is_bare_value():
    arr = V.from_json(42, I32, ())
    assert arr.shape == () and V.to_json(arr, I32) == 42
    assert V.to_bytes(arr, I32) == b"\x2a\0\0\0"
    assert V.from_bytes(b"\x2a\0\0\0", I32, ()).shape == ()
    # a one-element list for a scalar is the same element
    assert V.to_json(V.from_json([42], I32, ()), I32) == 42


def test_nesting_may_differ_but_count_must_match():
    arr = V.from_json([1, 2, 3, 4, 5, 6], I32, (2, 3))
    assert V.to_json(arr, I32) == [[1, 2, 3], [4, 5, 6]]
    arr = V.from_json([[1, 2], [3, 4], [5, 6]], I32, (2, 3))
    assert V.to_json(arr, I32) == [[1, 2, 3], [4, 5, 6]]
    arr = V.from_json([[1, 2, 3, 4], [5, 6]], I32, (2, 3))      # ragged, count 6
    assert V.to_json(arr, I32) == [[1, 2, 3], [4, 5, 6]]
    for bad in ([1, 2, 3], [[1, 2, 3], [4, 5, 6], [7]], 5, []):
        with pytest.raises(BadRequest):
            V.from_json(bad, I32, (2, 3))


def test_zero_sized_shapes():
    arr = V.from_json([], I32, (0,))
    assert arr.shape == (0,) and V.to_json(arr, I32) == [] and V.to_bytes(arr, I32) == b""
    arr = V.from_json([], I32, (0, 4))
    assert V.to_json(arr, I32) == []
    arr = V.from_json([[], [], []], VSTR_UTF8, (3, 0))
    assert V.to_json(arr, VSTR_UTF8) == [[], [], []]
    assert V.from_bytes(b"", VSTR_UTF8, (3, 0)).shape == (3, 0)


@pytest.mark.parametrize("value,t,shape", [
    ("XXXX", I32, ()), (float("nan"), I32, ()), ([1, float("nan")], I32, (2,)),
    (300, num("H5T_STD_U8LE"), ()), (-1, num("H5T_STD_U64LE"), ()),
    (2 ** 64, num("H5T_STD_U64LE"), ()), ({"a": 1}, I32, ()), (None, I32, ()),
    ("abc", F32, ()), ([1, "x"], F64, (2,)), ([[1], {"a": 2}], F64, (2,)),
    ([[1], [[2, "y"]]], I32, (3,)),
])
def test_invalid_numbers(value, t, shape):
    with pytest.raises(BadRequest):
        V.from_json(value, t, shape)


def test_float_into_int_truncates_like_numpy():
    assert V.to_json(V.from_json(1.9, I32, ()), I32) == 1


# ---- booleans and enums -------------------------------------------------------

def test_bool_roundtrip_and_bytes():
    arr = roundtrip([True, False, True], BOOL, (3,))
    assert arr.dtype == np.bool_
    assert V.to_bytes(arr, BOOL) == b"\x01\x00\x01"
    assert V.to_json(V.from_json([1, 0], BOOL, (2,)), BOOL) == [True, False]
    assert V.to_json(V.from_json(1, BOOL, ()), BOOL) is True
    assert V.to_json(V.from_bytes(b"\x00\x01", BOOL, 2), BOOL) == [False, True]


@pytest.mark.parametrize("bad", [2, -1, "yes", "true", None, [True, "x"], 0.5])
def test_bool_invalid(bad):
    with pytest.raises(BadRequest):
        V.from_json(bad, BOOL, np.shape(bad) if isinstance(bad, list) else ())


def test_enum_values_are_integers():
    t = {"class": "H5T_ENUM", "base": {"class": "H5T_INTEGER", "base": "H5T_STD_I16BE"},
         "mapping": {"RED": 0, "GREEN": 1, "BLUE": 2}}
    arr = roundtrip([2, 0, 1], t, (3,))
    assert V.to_bytes(arr, t) == bytes.fromhex("0002 0000 0001")


# ---- fixed-length strings ------------------------------------------------------

def test_fixed_string_truncation():
    t = fstr(7)
    arr = V.from_json("12345678", t, ())
    assert V.to_json(arr, t) == "1234567"
    assert V.to_bytes(arr, t) == b"1234567"


def test_fixed_string_nul_padding():
    t = fstr(6)
    arr = roundtrip(["ab", "", "abcdef"], t, (3,))
    assert V.to_bytes(arr, t) == b"ab\0\0\0\0" + b"\0" * 6 + b"abcdef"


def test_fixed_string_utf8_multibyte():
    t = fstr(8, utf8=True)
    value = ["été", "日本", "x" * 8, "ü" * 3]        # 5, 6, 8, 6 bytes
    arr = roundtrip(value, t, (4,))
    assert V.to_bytes(arr, t)[:8] == "été".encode() + b"\0\0\0"
    # byte length == length - 1 round-trips
    t = fstr(4, utf8=True)
    assert V.to_json(V.from_json("é2", t, ()), t) == "é2"


def test_fixed_string_invalid_utf8_is_400_on_json_read():
    t = fstr(4, utf8=True)
    arr = V.from_json("ééé", t, ())          # cut inside the second "é"
    assert V.to_bytes(arr, t) == "éé".encode()
    arr = V.from_json("aéé", t, ())          # 'a' + 'é' + first byte of 'é'
    with pytest.raises(BadRequest):
        V.to_json(arr, t)
    arr = V.from_bytes(b"\xfe\xff\0\0", t, ())
    with pytest.raises(BadRequest):
        V.to_json(arr, t)


@pytest.mark.parametrize("bad", [5, None, ["a", 5], {"a": "b"}])
def test_fixed_string_invalid(bad):
    with pytest.raises(BadRequest):
        V.from_json(bad, fstr(4), np.shape(bad) if isinstance(bad, list) else ())


# ---- variable-length strings ----------------------------------------------------

def test_vlen_string_utf8():
    value = ["", "ascii", "ünïcödé", "日本語", "emoji 🙂"]
    arr = roundtrip(value, VSTR_UTF8, (5,))
    assert arr.dtype.metadata == {"vlen": str}
    assert all(type(v) is str for v in arr)


def test_vlen_string_prefix_is_byte_count():
    arr = V.from_json("one: 一", VSTR_UTF8, ())
    data = V.to_bytes(arr, VSTR_UTF8)
    assert data == b"\x08\0\0\0" + "one: 一".encode()
    assert V.to_json(V.from_bytes(data, VSTR_UTF8, ()), VSTR_UTF8) == "one: 一"


def test_vlen_string_ascii_holds_bytes():
    arr = roundtrip(["abc", "de"], VSTR_ASCII, (2,))
    assert arr.dtype.metadata == {"vlen": bytes}
    assert list(arr) == [b"abc", b"de"]
    assert V.to_bytes(arr, VSTR_ASCII) == b"\x03\0\0\0abc\x02\0\0\0de"


def test_vlen_string_unwritten_is_zero():
    arr = V.fill_array(VSTR_UTF8, (3,))
    assert V.to_json(arr, VSTR_UTF8) == [0, 0, 0]
    assert V.to_bytes(arr, VSTR_UTF8) == b"\0" * 12
    arr[1] = "x"
    assert V.to_json(arr, VSTR_UTF8) == [0, "x", 0]
    arr[0] = None
    assert V.to_bytes(arr, VSTR_UTF8) == b"\0" * 4 + b"\x01\0\0\0x" + b"\0" * 4


def test_vlen_string_invalid():
    for bad in (5, None, ["a", 3], [["a"], [{}]]):
        with pytest.raises(BadRequest):
            V.from_json(bad, VSTR_UTF8, (len(bad),) if isinstance(bad, list) else ())
    with pytest.raises(BadRequest):
        V.from_bytes(b"\x02\0\0\0\xff\xfe", VSTR_UTF8, 1)
    with pytest.raises(BadRequest):
        V.from_json("x" * 1_000_001, VSTR_UTF8, ())
    V.from_json("x" * 1_000_000, VSTR_UTF8, ())


# ---- references -------------------------------------------------------------------

def test_object_references():
    value = [f"groups/{GID}", f"datasets/{DID}", "", GID]
    arr = roundtrip(value, REF, (4,))
    data = V.to_bytes(arr, REF)
    assert len(data) == 4 * 48
    assert data[:48] == f"groups/{GID}".encode().ljust(48, b"\0")
    assert data[96:144] == b"\0" * 48
    assert V.to_json(V.fill_array(REF, (2,)), REF) == ["", ""]


def test_reference_default_and_explicit_length():
    t = {"class": "H5T_REFERENCE", "base": "H5T_STD_REF_OBJ"}
    assert len(V.to_bytes(V.from_json(f"groups/{GID}", t, ()), t)) == 48
    t38 = {"class": "H5T_REFERENCE", "base": "H5T_STD_REF_OBJ", "length": 38}
    assert len(V.to_bytes(V.from_json(GID, t38, ()), t38)) == 38
    with pytest.raises(BadRequest):
        V.from_json(f"datasets/{DID}", t38, ())       # 47 bytes do not fit in 38
    for bad in (5, None, "grüße"):
        with pytest.raises(BadRequest):
            V.from_json(bad, t, ())


def test_region_references_are_variable_length_bytes():
    raw = b"HRRF\x01" + b"\x00\xff" * 3
    arr = V.from_bytes(V.to_bytes(np.array([raw, b""], dtype=object), REGREF), REGREF, 2)
    assert list(arr) == [raw, b""]
    assert V.to_bytes(arr, REGREF) == b"\x0b\0\0\0" + raw + b"\0\0\0\0"
    arr = roundtrip([f"datasets/{DID}", ""], REGREF, (2,))
    assert V.to_json(V.fill_array(REGREF, (1,)), REGREF) == [""]
    with pytest.raises(BadRequest):                   # binary region bytes: no JSON form
        V.to_json(V.from_bytes(b"\x02\0\0\0\xff\xfe", REGREF, 1), REGREF)


# ---- opaque --------------------------------------------------------------------------

def test_opaque():
    t = {"class": "H5T_OPAQUE", "size": 4, "tag": ""}
    raw = b"\x00\x01\xfe\xff" + b"abcd"
    arr = V.from_bytes(raw, t, 2)
    assert arr.dtype == np.dtype("V4")
    js = V.to_json(arr, t)
    assert js == [base64.b64encode(b"\x00\x01\xfe\xff").decode(), base64.b64encode(b"abcd").decode()]
    assert V.to_bytes(V.from_json(js, t, (2,)), t) == raw
    for bad in ("!!!", base64.b64encode(b"abc").decode(), 5):
        with pytest.raises(BadRequest):
            V.from_json(bad, t, ())


# ---- compounds ---------------------------------------------------------------------------

CMPD_FG = {"class": "H5T_COMPOUND", "fields": [
    {"name": "f", "type": {"class": "H5T_INTEGER", "base": "H5T_STD_I32LE"}},
    {"name": "g", "type": {"class": "H5T_FLOAT", "base": "H5T_IEEE_F32LE"}}]}


def test_compound_scalar_and_single_element():
    arr = V.from_json([42, 0.5], CMPD_FG, ())
    assert V.to_json(arr, CMPD_FG) == [42, 0.5]
    assert V.to_bytes(arr, CMPD_FG) == np.array(42, "<i4").tobytes() + np.array(0.5, "<f4").tobytes()
    # one element: a bare field list or a list holding it
    assert V.to_json(V.from_json([42, 0.5], CMPD_FG, (1,)), CMPD_FG) == [[42, 0.5]]
    assert V.to_json(V.from_json([[42, 0.5]], CMPD_FG, (1,)), CMPD_FG) == [[42, 0.5]]
    # float32 field reads back as the nearest double
    assert V.to_json(V.from_json([42, 0.42], CMPD_FG, ()), CMPD_FG) == \
        [42, float(np.float32(0.42))]


def test_compound_shapes():
    value = [[1, 0.5], [2, 1.5], [3, 2.5], [4, 3.5]]
    roundtrip(value, CMPD_FG, (4,))
    arr = V.from_json(value, CMPD_FG, (2, 2))              # flat list for 2-D
    assert V.to_json(arr, CMPD_FG) == [value[:2], value[2:]]
    arr = V.from_json([value[:2], value[2:]], CMPD_FG, (2, 2))
    assert V.to_json(arr, CMPD_FG) == [value[:2], value[2:]]


@pytest.mark.parametrize("bad,shape", [
    (42, ()), ("ab", ()), ([1], ()), ([1, 2, 3], ()), ([[1, 2], [3]], (2,)),
    ([[1, 2]], (2,)), ([["x", 1]], (1,)), ([1, 2], (2,)),
])
def test_compound_invalid(bad, shape):
    with pytest.raises(BadRequest):
        V.from_json(bad, CMPD_FG, shape)


NESTED = {"class": "H5T_COMPOUND", "fields": [
    {"name": "id", "type": "H5T_STD_U64BE"},
    {"name": "pos", "type": {"class": "H5T_ARRAY", "dims": [3], "base": "H5T_IEEE_F64LE"}},
    {"name": "grid", "type": {"class": "H5T_ARRAY", "dims": [2], "base": {
        "class": "H5T_ARRAY", "dims": [2], "base": {"class": "H5T_INTEGER", "base": "H5T_STD_I16LE"}}}},
    {"name": "inner", "type": {"class": "H5T_COMPOUND", "fields": [
        {"name": "flag", "type": {"class": "H5T_ENUM",
                                  "base": {"class": "H5T_INTEGER", "base": "H5T_STD_I8LE"},
                                  "mapping": {"FALSE": 0, "TRUE": 1}}},
        {"name": "tags", "type": {"class": "H5T_ARRAY", "dims": [2], "base": fstr(3, True)}},
        {"name": "ref", "type": REF}]}},
]}


def test_nested_compound_with_array_fields():
    value = [
        [2 ** 64 - 1, [1.0, float("nan"), -0.0], [[1, 2], [3, 4]], [True, ["é", "ab"], f"groups/{GID}"]],
        [7, [0.0, 1e300, float("-inf")], [[-5, 6], [7, -8]], [False, ["", "xyz"], ""]],
    ]
    arr = roundtrip(value, NESTED, (2,))
    d = T.dtype_of(NESTED)
    assert d.itemsize == 8 + 24 + 8 + (1 + 6 + 48)
    data = V.to_bytes(arr, NESTED)
    assert len(data) == 2 * d.itemsize
    assert data[:8] == b"\xff" * 8
    assert data[d.itemsize:d.itemsize + 8] == (7).to_bytes(8, "big")


def test_compound_with_vlen_field_bytes():
    t = {"class": "H5T_COMPOUND", "fields": [
        {"name": "n", "type": "H5T_STD_I16LE"}, {"name": "s", "type": VSTR_UTF8}]}
    value = [[1, "ab"], [-2, "été"], [300, ""]]
    arr = roundtrip(value, t, (3,))
    assert V.to_bytes(arr, t) == bytes.fromhex("0100 02000000 6162 feff 05000000 c3a974c3a9 "
                                               "2c01 00000000")
    assert V.to_json(V.fill_array(t, (2,)), t) == [[0, 0], [0, 0]]


# ---- arrays --------------------------------------------------------------------------------

def test_top_level_array_scalar():
    t = {"class": "H5T_ARRAY", "dims": [3], "base": {"class": "H5T_INTEGER", "base": "H5T_STD_I32LE"}}
    arr = roundtrip([7, 8, 9], t, ())
    assert arr.shape == (3,) and arr.dtype == np.dtype("<i4")
    assert V.to_bytes(arr, t) == np.array([7, 8, 9], "<i4").tobytes()


def test_top_level_nested_array():
    t = {"class": "H5T_ARRAY", "dims": [3], "base": {"class": "H5T_ARRAY", "dims": [2],
                                                    "base": "H5T_STD_I32BE"}}
    value = [[[0, 1], [2, 3], [4, 5]], [[6, 7], [8, 9], [10, 11]]]
    arr = roundtrip(value, t, (2,))
    assert arr.shape == (2, 3, 2)
    assert V.to_bytes(arr, t) == np.arange(12, dtype=">i4").tobytes()
    # flat input with the right count is fine
    assert V.to_json(V.from_json(list(range(12)), t, (2,)), t) == value


def test_array_of_fixed_strings():
    t = {"class": "H5T_ARRAY", "dims": [2], "base": fstr(3)}
    roundtrip([["a", "bc"], ["def", ""]], t, (2,))


def test_array_of_vlen_strings_wire_padding():
    t = {"class": "H5T_ARRAY", "dims": [2], "base": VSTR_UTF8}
    arr = roundtrip([["a", "bc"], ["", "é"]], t, (2,))
    body = b"\x01\0\0\0a\x02\0\0\0bc" + b"\0\0\0\0" + b"\x02\0\0\0\xc3\xa9"
    assert V.to_bytes(arr, t, wire=False) == body
    assert V.to_bytes(arr, t) == body + b"\0" * 8       # 4 bytes per element


def test_vlen_compound_192_bytes():
    """testPutVLenCompoundBinary: 4 x {u64be, S8, array[2] of vlen str} -> 192 bytes."""
    vstr = dict(VSTR_ASCII)
    t = T.normalize_type({"class": "H5T_COMPOUND", "fields": [
        {"type": "H5T_STD_U64BE", "name": "VALUE1"},
        {"type": fstr(8), "name": "VALUE2"},
        {"type": {"class": "H5T_ARRAY", "dims": [2], "base": vstr}, "name": "VALUE3"}]})
    value = [[i + 1, f"data_{i + 1}", ["Hi! " * (i + 1), "Bye!" * (i + 1)]] for i in range(4)]
    arr = V.from_json(value, t, (4,))
    data = V.to_bytes(arr, t)
    assert len(data) == 192
    assert data[176:] == b"\0" * 16
    assert len(V.to_bytes(arr, t, wire=False)) == 176
    assert data[:8] == (1).to_bytes(8, "big")
    assert data[8:16] == b"data_1\0\0"
    assert data[16:28] == b"\x04\0\0\0Hi! \x04\0\0\0"
    back = V.from_bytes(data, t, 4)                   # padding ignored
    assert V.to_json(back, t) == value
    # the same element built the numpy way (like the HSDS test)
    dt = T.dtype_of(t)
    np_arr = np.zeros(4, dtype=dt)
    for i in range(4):
        np_arr[i] = (i + 1, f"data_{i + 1}", [b"Hi! " * (i + 1), b"Bye!" * (i + 1)])
    assert V.to_bytes(np_arr, t) == data


# ---- vlen sequences ---------------------------------------------------------------------------

def test_vlen_int32_56_bytes():
    value = [[1], [1, 2], [1, 2, 3], [1, 2, 3, 4]]
    arr = roundtrip(value, VLEN_I32, (4,))
    data = V.to_bytes(arr, VLEN_I32)
    assert len(data) == 56
    assert data[:16] == bytes.fromhex("04000000 01000000 08000000 01000000")
    assert isinstance(arr[2], np.ndarray) and arr[2].dtype == np.dtype("<i4")


def test_vlen_empty_and_unwritten():
    arr = roundtrip([[], [5]], VLEN_I32, (2,))
    assert V.to_bytes(arr, VLEN_I32) == b"\0\0\0\0" + b"\x04\0\0\0\x05\0\0\0"
    fill = V.fill_array(VLEN_I32, (3,))
    assert V.to_json(fill, VLEN_I32) == [0, 0, 0]
    assert V.to_bytes(fill, VLEN_I32) == b"\0" * 12
    # a decoded zero-length element is an empty list, not "unwritten"
    assert V.to_json(V.from_bytes(b"\0" * 12, VLEN_I32, 3), VLEN_I32) == [[], [], []]


def test_vlen_scalar_and_single_element():
    assert V.to_json(V.from_json([1, 2, 3], VLEN_I32, ()), VLEN_I32) == [1, 2, 3]
    assert V.to_json(V.from_json([1, 2, 3], VLEN_I32, (1,)), VLEN_I32) == [[1, 2, 3]]
    assert V.to_json(V.from_json([[1, 2, 3]], VLEN_I32, (1,)), VLEN_I32) == [[1, 2, 3]]
    assert V.to_json(V.from_json([], VLEN_I32, ()), VLEN_I32) == []


def test_vlen_float_nan():
    t = {"class": "H5T_VLEN", "base": "H5T_IEEE_F64BE"}
    arr = roundtrip([[float("nan"), 1.0], []], t, (2,))
    assert V.to_json(arr, t, ignore_nan=True) == [[None, 1.0], []]


def test_vlen_of_references():
    t = {"class": "H5T_VLEN", "base": REF}
    value = [[f"datasets/{DID}", f"groups/{GID}"], []]
    arr = roundtrip(value, t, (2,))
    assert V.to_bytes(arr, t)[:4] == (96).to_bytes(4, "little")


def test_vlen_of_compound():
    t = {"class": "H5T_VLEN", "base": CMPD_FG}
    value = [[[1, 0.5], [2, 1.5]], [], [[3, -1.0]]]
    arr = roundtrip(value, t, (3,))
    assert V.to_bytes(arr, t)[:4] == (16).to_bytes(4, "little")


def _item(payload):
    return len(payload).to_bytes(4, "little") + payload


def _i32s(*v):
    return np.array(v, dtype="<i4").tobytes()


VLEN_I32_LE = {"class": "H5T_VLEN", "base": I32}
INNER_VLENS = {"class": "H5T_COMPOUND", "fields": [{"name": "a", "type": VLEN_I32_LE},
                                                   {"name": "b", "type": VLEN_I32_LE}]}
# h5pyd test_datatype::test_nested_compound_vlen: {f1: vlen of {a: vlen i4, b: vlen i4}, f2: i8}
NESTED_VLEN = {"class": "H5T_COMPOUND", "fields": [
    {"name": "f1", "type": {"class": "H5T_VLEN", "size": "H5T_VARIABLE", "base": INNER_VLENS}},
    {"name": "f2", "type": num("H5T_STD_I64LE")}]}
NESTED_VLEN_VALUE = [[[[[1, 2], [6, 7, 8]], [[10, 11, 12, 13], [16, 17, 18, 19, 20]]], 2],
                     [[[[1, 2], [6, 7, 8]]], 3]]


def test_vlen_of_compound_with_vlen_fields():
    """The outer prefix counts the payload bytes: each record's fields, each vlen field
    with its own prefix (§12.4, recursively) -- h5pyd's 124-byte body."""
    arr = roundtrip(NESTED_VLEN_VALUE, NESTED_VLEN, (2,))
    in1 = _item(_i32s(1, 2)) + _item(_i32s(6, 7, 8))
    in2 = _item(_i32s(10, 11, 12, 13)) + _item(_i32s(16, 17, 18, 19, 20))
    expect = (_item(in1 + in2) + (2).to_bytes(8, "little")
              + _item(in1) + (3).to_bytes(8, "little"))
    assert len(expect) == 124
    assert V.to_bytes(arr, NESTED_VLEN) == expect
    back = V.from_bytes(expect, NESTED_VLEN, 2)
    assert back["f1"][0].dtype.names == ("a", "b")
    assert back["f1"][0]["b"][1].tolist() == [16, 17, 18, 19, 20]
    # scalar (the attribute of test_nesting_compound_with_vlen_fields), empty sequences
    roundtrip(NESTED_VLEN_VALUE[0], NESTED_VLEN, ())
    roundtrip([[[], 7], [[[[], []]], 8]], NESTED_VLEN, (2,))
    assert V.to_bytes(V.from_json([[], 7], NESTED_VLEN, ()), NESTED_VLEN) == \
        b"\0" * 4 + (7).to_bytes(8, "little")


def test_vlen_of_compound_with_vlen_strings():
    """test_vlen_compound_with_vlen_string: {f: vlen of {a: vstr, b: vstr}}."""
    for cs in (VSTR_UTF8, VSTR_ASCII):
        t = {"class": "H5T_COMPOUND", "fields": [{"name": "f", "type": {
            "class": "H5T_VLEN", "base": {"class": "H5T_COMPOUND", "fields": [
                {"name": "a", "type": cs}, {"name": "b", "type": cs}]}}}]}
        value = [[["apples", "bananas"], ["peaches", "oranges"]]]
        arr = roundtrip(value, t, ())
        pair = _item(b"apples") + _item(b"bananas") + _item(b"peaches") + _item(b"oranges")
        assert V.to_bytes(arr, t) == _item(pair)


def test_vlen_of_vlen():
    t = {"class": "H5T_VLEN", "base": VLEN_I32_LE}
    value = [[[1], [2, 3], []], [], [[4]]]
    arr = roundtrip(value, t, (3,))
    assert V.to_bytes(arr, t) == (_item(_item(_i32s(1)) + _item(_i32s(2, 3)) + _item(b""))
                                  + _item(b"") + _item(_item(_i32s(4))))
    t3 = {"class": "H5T_VLEN", "base": t}                          # three levels
    roundtrip([[[[1, 2]], []], []], t3, (2,))


def test_vlen_of_vlen_string():
    t = {"class": "H5T_VLEN", "base": VSTR_UTF8}
    arr = roundtrip([["a", "b\u00e9"], []], t, (2,))
    assert V.to_bytes(arr, t) == _item(_item(b"a") + _item("b\u00e9".encode())) + _item(b"")
    assert V.to_json(V.from_bytes(b"\x05\0\0\0\x01\0\0\0a", t, 1), t) == [["a"]]
    # testPutVlenVlenError: a bare string is no vlen element
    with pytest.raises(BadRequest):
        V.from_json("one: \u4e00", t, ())
    fill = V.fill_array(t, (2,))                      # unwritten data reads as 0
    assert V.to_json(fill, t) == [0, 0]
    assert V.to_bytes(fill, t) == b"\0" * 8


def test_nested_vlen_unwritten_internal():
    """Unwritten elements below the top level keep their -1 marker between processes."""
    t = {"class": "H5T_VLEN", "base": VLEN_I32_LE}
    arr = np.empty(1, dtype=T.dtype_of(t))
    inner = np.empty(2, dtype=T.dtype_of(VLEN_I32_LE))
    inner[0] = 0
    inner[1] = np.array([5], dtype="<i4")
    arr[0] = inner
    data = V.to_bytes(arr, t, internal=True)
    assert data == _item(b"\xff\xff\xff\xff" + _item(_i32s(5)))
    assert V.to_json(V.from_bytes(data, t, 1, internal=True), t) == [[0, [5]]]
    assert V.to_json(V.from_bytes(V.to_bytes(arr, t), t, 1), t) == [[[], [5]]]


def test_nested_vlen_invalid():
    t = {"class": "H5T_VLEN", "base": VLEN_I32_LE}
    for bad in ([[1, 2]], [["x"]], [[[1], 2]]):
        with pytest.raises(BadRequest):
            V.from_json(bad, t, (1,))
    with pytest.raises(BadRequest):                   # a bare int for the compound record
        V.from_json([[5], 1], NESTED_VLEN, ())
    good = V.to_bytes(V.from_json([[[1], [2, 3]]], t, (1,)), t)
    for data in (good[:-1],                           # too short
                 (6).to_bytes(4, "little") + good[4:],   # outer length cuts an inner item
                 (8).to_bytes(4, "little") + _item(b"\x01\x00\x00") + b"\0"):  # 3 of i4
        with pytest.raises(BadRequest):
            V.from_bytes(data, t, 1)


def test_vlen_invalid():
    for bad, shape in ((5, ()), ([1, 2], (2,)), ([[1], "x"], (2,)), ([[1, "x"]], (1,)),
                       ([[1], [2], [3]], (2,))):
        with pytest.raises(BadRequest):
            V.from_json(bad, VLEN_I32, shape)
    with pytest.raises(BadRequest):
        V.from_json([list(range(250_001))], VLEN_I32, (1,))      # > 1,000,000 bytes


# ---- from_bytes rules ---------------------------------------------------------------------------

def test_fixed_length_must_match():
    with pytest.raises(BadRequest):
        V.from_bytes(b"\0" * 23, I32, 6)
    with pytest.raises(BadRequest):
        V.from_bytes(b"\0" * 28, I32, (2, 3))
    assert V.from_bytes(b"\0" * 24, I32, (2, 3)).shape == (2, 3)


def test_fixed_view_is_read_only_unless_asked():
    arr = V.from_bytes(b"\0" * 8, I32, 2)
    assert not arr.flags.writeable
    arr = V.from_bytes(b"\0" * 8, I32, 2, writable=True)
    assert arr.flags.writeable
    buf = bytearray(8)
    arr = V.from_bytes(buf, I32, 2)
    assert arr.flags.writeable                        # zero-copy over a writable buffer


def test_variable_too_short_or_too_big():
    with pytest.raises(BadRequest):
        V.from_bytes(b"\x04\0\0\0\x01\0\0\0", VLEN_I32, 2)
    with pytest.raises(BadRequest):
        V.from_bytes(b"\x08\0\0\0\x01\0\0\0", VLEN_I32, 1)
    with pytest.raises(BadRequest):
        V.from_bytes(b"\x04\0\0", VLEN_I32, 1)
    with pytest.raises(BadRequest):
        V.from_bytes(b"\x03\0\0\0abc", VLEN_I32, 1)           # not a multiple of 4
    with pytest.raises(BadRequest):
        V.from_bytes(b"\xff\xff\xff\xff", VSTR_UTF8, 1)        # negative size
    big = (1_000_001).to_bytes(4, "little") + b"x" * 1_000_001
    with pytest.raises(BadRequest):
        V.from_bytes(big, VSTR_ASCII, 1)
    ok = (1_000_000).to_bytes(4, "little") + b"x" * 1_000_000
    assert len(V.from_bytes(ok, VSTR_ASCII, 1)[0]) == 1_000_000


def test_variable_trailing_bytes_ignored():
    data = b"\x01\0\0\0a" + b"\0" * 16
    assert V.to_json(V.from_bytes(data, VSTR_UTF8, 1), VSTR_UTF8) == ["a"]
    assert V.to_json(V.from_bytes(memoryview(data), VSTR_UTF8, ()), VSTR_UTF8) == "a"


# ---- fill values ---------------------------------------------------------------------------------

def test_fill_json():
    arr = V.fill_array(I32, (2, 3), fill_json=7)
    assert V.to_json(arr, I32) == [[7] * 3] * 2
    assert arr.flags.writeable
    arr = V.fill_array(F32, (2,), fill_json="nan")
    assert all(math.isnan(v) for v in V.to_json(arr, F32))
    t = {"class": "H5T_COMPOUND", "fields": [{"name": "s", "type": fstr(8)},
                                              {"name": "v", "type": I32}]}
    assert V.to_json(V.fill_array(t, (2,), fill_json=["blank", -999]), t) == [["blank", -999]] * 2
    big = fstr(1000)
    arr = V.fill_array(big, (3,), fill_json="x" * 1000)
    assert V.to_json(arr, big) == ["x" * 1000] * 3
    assert V.to_json(V.fill_array(VSTR_UTF8, (2,), fill_json="abc"), VSTR_UTF8) == ["abc"] * 2
    arr = V.fill_array(VLEN_I32, (2,), fill_json=[1, 2])
    assert V.to_json(arr, VLEN_I32) == [[1, 2], [1, 2]]
    t = {"class": "H5T_ARRAY", "dims": [2], "base": "H5T_STD_I16LE"}
    assert V.to_json(V.fill_array(t, (3,), fill_json=[4, 5]), t) == [[4, 5]] * 3
    assert V.to_json(V.fill_array(t, (), fill_json=[4, 5]), t) == [4, 5]


def test_fill_base64():
    arr = V.fill_array(F32, (3,), fill_b64="AADAfw==")
    assert all(math.isnan(v) for v in V.to_json(arr, F32))
    arr = V.fill_array(I32, (2,), fill_b64=base64.b64encode(b"\x07\0\0\0").decode())
    assert V.to_json(arr, I32) == [7, 7]
    arr = V.fill_array(VSTR_UTF8, (2,), fill_b64=base64.b64encode(b"\x02\0\0\0hi").decode())
    assert V.to_json(arr, VSTR_UTF8) == ["hi", "hi"]


def test_fill_zeros():
    assert V.to_json(V.fill_array(I32, (2,)), I32) == [0, 0]
    assert V.to_json(V.fill_array(fstr(3), (2,)), fstr(3)) == ["", ""]
    assert V.to_json(V.fill_array(BOOL, (2,)), BOOL) == [False, False]
    assert V.to_json(V.fill_array(NESTED, ()), NESTED) == \
        [0, [0.0] * 3, [[0, 0], [0, 0]], [False, ["", ""], ""]]


@pytest.mark.parametrize("kwargs", [
    {"fill_json": "XXXX"}, {"fill_json": float("nan")}, {"fill_b64": "!!"},
    {"fill_b64": "AAA="}, {"fill_b64": 5},
])
def test_fill_invalid(kwargs):
    with pytest.raises(BadRequest):
        V.fill_array(I32, (2,), **kwargs)


# ---- performance: fixed-size numbers are pure numpy ----------------------------------------------

def test_million_float32_is_fast():
    values = np.random.default_rng(1).random(1_000_000).astype(np.float32)
    as_list = values.tolist()
    start = time.perf_counter()
    arr = V.from_json(as_list, F32, (1000, 1000))
    js = V.to_json(arr, F32)
    data = V.to_bytes(arr, F32)
    back = V.from_bytes(data, F32, (1000, 1000))
    elapsed = time.perf_counter() - start
    assert np.array_equal(back.reshape(-1), values)
    assert len(js) == 1000 and len(data) == 4_000_000
    assert elapsed < 2.0, elapsed


# ---- the HSDS 1.0.2 fixture ------------------------------------------------------------------------

def _expected():
    with open(FIXTURE / "expected.json") as f:
        return json.load(f)


def _attributes():
    out = []
    for path, obj in _expected()["objects"].items():
        for name, attr in obj.get("attributes", {}).items():
            out.append((f"{path}@{name}", attr))
    return out


def _shape_tuple(shape):
    if shape["class"] == "H5S_SCALAR":
        return ()
    if shape["class"] == "H5S_NULL":
        return None
    return tuple(shape["dims"])


@pytest.mark.parametrize("where,attr", _attributes(), ids=[w for w, _ in _attributes()])
def test_fixture_attribute_roundtrip(where, attr):
    t = T.normalize_type(attr["type"])
    shape = _shape_tuple(attr["shape"])
    if shape is None:
        assert attr["value"] is None
        return
    arr = V.from_json(attr["value"], t, shape)
    assert same(V.to_json(arr, t), attr["value"])
    back = V.from_bytes(V.to_bytes(arr, t), t, shape)
    assert same(V.to_json(back, t), attr["value"])


UNFILTERED = ("/g1/float2d", "/g1/partitioned_i4", "/g1/small_contig", "/g1/shuffle_only_i4",
              "/g1/fletcher32_i4", "/g2/bigendian_i4", "/g2/bool", "/g2/ctype_dset",
              "/g2/objref", "/g2/resizable", "/g2/table", "/g2/vlen_cmpd", "/g2/vlen_i4",
              "/g2/vlen_str", "/refs/chunk_table", "/scalar")


def _chunk_shape(meta):
    layout = meta["creationProperties"]["layout"]
    if layout["class"].startswith("H5D_CHUNKED"):
        return tuple(layout["dims"])
    if meta["shape"]["class"] == "H5S_SCALAR":
        return (1,)
    return tuple(meta["shape"]["dims"])


@pytest.mark.parametrize("path", UNFILTERED)
def test_fixture_chunks(path):
    obj = _expected()["objects"][path]
    key = Path(FIXTURE / "hsdstest" / obj["key"])
    meta = json.loads(key.read_text())
    t = meta["type"]
    assert T.normalize_type(t) == t
    cshape = _chunk_shape(meta)
    dims = tuple(meta["shape"].get("dims", ()))
    samples = list(obj.get("samples", []))
    summary = obj.get("summary", {})
    if isinstance(summary, dict) and "values" in summary:
        values = summary["values"]
        if not dims:
            samples.append({"index": [], "value": values})
        else:
            for idx in np.ndindex(*dims):
                v = values
                for k in idx:
                    v = v[k]
                samples.append({"index": list(idx), "value": v})
    checked = 0
    for ckey in obj["chunk_keys"]:
        data = (key.parent / ckey).read_bytes()
        arr = V.from_bytes(data, t, cshape)
        assert arr.shape == cshape
        assert V.to_bytes(arr, t, wire=False) == data
        cidx = tuple(int(c) for c in ckey.split("/")[-1].split("_"))
        for s in samples:
            idx = tuple(s["index"]) or (0,)
            if tuple(i // c for i, c in zip(idx, cshape)) != cidx:
                continue
            local = tuple(i % c for i, c in zip(idx, cshape)) + (Ellipsis,)   # keep 0-d
            assert same(V.to_json(arr[local], t), s["value"]), (s, V.to_json(arr[local], t))
            checked += 1
    assert checked >= min(len(samples), 1)


STORAGE_HEX = {
    "/g2/vlen_str": ("00000000 05000000 6173636969 0b000000 c3bc6ec3af63c3b664c3a9",
                     ["", "ascii", "ünïcödé"]),
    "/g2/vlen_i4": ("0c000000 01000000 02000000 03000000 00000000 04000000 fbffffff",
                    [[1, 2, 3], [], [-5]]),
    "/g2/vlen_cmpd": ("0100 02000000 6162 feff 05000000 c3a974c3a9", [[1, "ab"], [-2, "été"]]),
}


@pytest.mark.parametrize("path", sorted(STORAGE_HEX))
def test_storage_md_hex_examples(path):
    hexbytes, values = STORAGE_HEX[path]
    t = _expected()["objects"][path]["type"]
    raw = bytes.fromhex(hexbytes)
    arr = V.from_json(values, t, (len(values),))
    assert V.to_bytes(arr, t, wire=False) == raw
    assert V.to_json(V.from_bytes(raw, t, len(values)), t) == values
    full = (FIXTURE / "hsdstest" / Path(_expected()["objects"][path]["key"]).parent / "0").read_bytes()
    assert full.startswith(raw)
    expected_all = _expected()["objects"][path]["summary"]["values"]
    assert V.to_bytes(V.from_json(expected_all, t, (len(expected_all),)), t, wire=False) == full


# ---- hypothesis round trips --------------------------------------------------------------------------

NUMERIC = INT_NAMES + FLOAT_NAMES


def _element_strategy(name):
    dt = T.dtype_of(name)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return st.integers(int(info.min), int(info.max))
    width = dt.itemsize * 8
    return st.floats(width=width, allow_nan=True, allow_infinity=True)


@st.composite
def numeric_case(draw):
    name = draw(st.sampled_from(NUMERIC))
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=3)))
    values = draw(st.lists(_element_strategy(name), min_size=math.prod(shape),
                           max_size=math.prod(shape)))
    return num(name), shape, values


@given(numeric_case())
@settings(max_examples=200, deadline=None)
def test_property_numeric_roundtrip(case):
    t, shape, values = case
    arr = V.from_json(values, t, shape)
    assert arr.shape == shape and arr.dtype == T.dtype_of(t)
    out = V.to_json(arr, t)
    flat = V._flatten(out) if shape else [out]
    assert same(flat, values)
    data = V.to_bytes(arr, t)
    assert data == np.array(values, dtype=T.dtype_of(t)).tobytes()
    assert same(V.to_json(V.from_bytes(data, t, shape), t), out)


def _field_type(draw):
    choice = draw(st.sampled_from(["num", "fstr", "vstr", "array", "vlen", "bool"]))
    if choice == "num":
        name = draw(st.sampled_from(NUMERIC))
        return draw(st.sampled_from([name, num(name)])), _element_strategy(name)
    if choice == "fstr":
        n = draw(st.integers(1, 6))
        return fstr(n), st.text(alphabet="abcXYZ09 _", max_size=n)
    if choice == "vstr":
        return VSTR_UTF8, st.text(max_size=8)
    if choice == "bool":
        return BOOL, st.booleans()
    if choice == "vlen":
        return VLEN_I32, st.lists(st.integers(-2 ** 31, 2 ** 31 - 1), max_size=4)
    return ({"class": "H5T_ARRAY", "dims": [2], "base": "H5T_STD_I16BE"},
            st.lists(st.integers(-2 ** 15, 2 ** 15 - 1), min_size=2, max_size=2))


@st.composite
def compound_case(draw):
    nf = draw(st.integers(1, 4))
    types, strategies = [], []
    for _ in range(nf):
        ft, s = _field_type(draw)
        types.append(ft)
        strategies.append(s)
    t = T.normalize_type({"class": "H5T_COMPOUND",
                          "fields": [{"name": f"f{i}", "type": ft} for i, ft in enumerate(types)]})
    n = draw(st.integers(0, 5))
    values = [[draw(s) for s in strategies] for _ in range(n)]
    return t, values


@given(compound_case())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_property_compound_roundtrip(case):
    t, values = case
    arr = V.from_json(values, t, (len(values),))
    assert same(V.to_json(arr, t), values)
    for wire in (True, False):
        back = V.from_bytes(V.to_bytes(arr, t, wire=wire), t, len(values))
        assert same(V.to_json(back, t), values)
    if not T.is_variable(t):
        assert len(V.to_bytes(arr, t)) == len(values) * T.item_size(t)


@given(st.lists(st.lists(st.integers(-2 ** 63, 2 ** 63 - 1), max_size=6), max_size=6))
@settings(max_examples=100, deadline=None)
def test_property_vlen_int64_roundtrip(values):
    t = {"class": "H5T_VLEN", "base": "H5T_STD_I64BE"}
    arr = V.from_json(values, t, (len(values),))
    data = V.to_bytes(arr, t)
    assert len(data) == sum(4 + 8 * len(v) for v in values)
    assert V.to_json(V.from_bytes(data, t, len(values)), t) == values


@given(st.lists(st.text(), max_size=6), st.sampled_from([VSTR_UTF8, VSTR_ASCII]))
@settings(max_examples=100, deadline=None)
def test_property_vlen_string_roundtrip(values, t):
    arr = V.from_json(values, t, (len(values),))
    data = V.to_bytes(arr, t)
    assert len(data) == sum(4 + len(v.encode()) for v in values)
    assert V.to_json(V.from_bytes(data, t, len(values)), t) == values


def test_fill_variable_compound_and_array():
    t = {"class": "H5T_COMPOUND", "fields": [
        {"name": "n", "type": "H5T_STD_I16LE"}, {"name": "s", "type": VSTR_UTF8},
        {"name": "v", "type": VLEN_I32}]}
    arr = V.fill_array(t, (2, 2), fill_json=[5, "x", [1, 2]])
    assert V.to_json(arr, t) == [[[5, "x", [1, 2]]] * 2] * 2
    assert V.to_bytes(arr, t) == (b"\x05\0" + b"\x01\0\0\0x" + b"\x08\0\0\0\x01\0\0\0\x02\0\0\0") * 4
    t = {"class": "H5T_ARRAY", "dims": [2], "base": VSTR_UTF8}
    arr = V.fill_array(t, (3,), fill_json=["a", "b"])
    assert arr.shape == (3, 2)
    assert V.to_json(arr, t) == [["a", "b"]] * 3
    assert V.to_json(V.fill_array(t, (1,)), t) == [[0, 0]]
    assert V.to_bytes(V.fill_array(t, (1,)), t) == b"\0" * 12     # 8 + 4 wire padding
