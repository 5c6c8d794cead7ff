"""server/core/types.py against REST_API.md §12 and the HSDS 1.0.2 fixture."""
import copy
import json

import numpy as np
import pytest

from server.core import types as T
from server.core.errors import BadRequest

from conftest import FIXTURE

INT_NAMES = [f"H5T_STD_{s}{b}{o}" for s in "IU" for b in (8, 16, 32, 64) for o in ("LE", "BE")]
FLOAT_NAMES = [f"H5T_IEEE_F{b}{o}" for b in (16, 32, 64) for o in ("LE", "BE")]

VSTR_UTF8 = {"class": "H5T_STRING", "charSet": "H5T_CSET_UTF8",
             "strPad": "H5T_STR_NULLTERM", "length": "H5T_VARIABLE"}
VSTR_ASCII = {"class": "H5T_STRING", "charSet": "H5T_CSET_ASCII",
              "strPad": "H5T_STR_NULLTERM", "length": "H5T_VARIABLE"}
FSTR7 = {"class": "H5T_STRING", "charSet": "H5T_CSET_ASCII",
         "strPad": "H5T_STR_NULLPAD", "length": 7}
I32 = {"class": "H5T_INTEGER", "base": "H5T_STD_I32LE"}
BOOL = {"class": "H5T_ENUM", "base": {"class": "H5T_INTEGER", "base": "H5T_STD_I8LE"},
        "mapping": {"FALSE": 0, "TRUE": 1}}
REF = {"class": "H5T_REFERENCE", "base": "H5T_STD_REF_OBJ"}


def _expected():
    with open(FIXTURE / "expected.json") as f:
        return json.load(f)


# ---- predefined names (§12.1) ---------------------------------------------

@pytest.mark.parametrize("name", INT_NAMES + FLOAT_NAMES)
def test_top_level_name_expands(name):
    cls = "H5T_INTEGER" if name.startswith("H5T_STD") else "H5T_FLOAT"
    assert T.normalize_type(name) == {"class": cls, "base": name}


@pytest.mark.parametrize("name", INT_NAMES + FLOAT_NAMES)
def test_name_dtype(name):
    dt = T.dtype_of(T.normalize_type(name))
    stem = name[:-2]
    kind = "f" if "IEEE" in stem else ("i" if stem.startswith("H5T_STD_I") else "u")
    bits = int(stem[len("H5T_IEEE_F"):] if kind == "f" else stem[len("H5T_STD_I"):])
    order = ">" if name.endswith("BE") else "<"
    assert dt == np.dtype(f"{order}{kind}{bits // 8}")
    assert dt.str[0] == (order if bits > 8 else "|")
    assert T.item_size(name) == bits // 8
    assert not T.is_variable(name)
    # nested (suffix optional) form of the same name: little-endian
    assert T.dtype_of({"class": T.type_class(name), "base": stem}) == np.dtype(f"<{kind}{bits // 8}")


@pytest.mark.parametrize("bad", [
    "H5T_STD_I32", "H5T_IEEE_F64", "H5T_NATIVE_INT", "H5T_NATIVE_FLOAT", "float", "int32",
    "H5T_IEEE_F128LE", "H5T_STD_B8LE", "H5T_STD_I24LE", "H5T_STD_REF_OBJ", "",
    "h5t_std_i32le", "H5T_STD_I32LE ", "t-83d8d88d-2f87bd91-25eb-949188-4402c3",
])
def test_top_level_name_invalid(bad):
    with pytest.raises(BadRequest):
        T.normalize_type(bad)


@pytest.mark.parametrize("bad", [None, 5, 1.5, True, [], ["H5T_STD_I32LE"]])
def test_type_of_wrong_kind(bad):
    with pytest.raises(BadRequest):
        T.normalize_type(bad)


def test_nested_name_without_suffix_is_little_endian_and_kept():
    t = {"class": "H5T_VLEN", "size": "H5T_VARIABLE", "base": "H5T_STD_I32"}
    assert T.normalize_type(t) == t
    assert T.dtype_of(t).metadata["vlen"] == np.dtype("<i4")
    t = {"class": "H5T_INTEGER", "base": "H5T_STD_U16"}
    assert T.normalize_type(t) == t
    assert T.dtype_of(t) == np.dtype("<u2")
    t = {"class": "H5T_COMPOUND", "fields": [{"name": "a", "type": "H5T_IEEE_F64"},
                                              {"name": "b", "type": "H5T_STD_I16BE"}]}
    assert T.normalize_type(t) == t
    assert T.dtype_of(t) == np.dtype([("a", "<f8"), ("b", ">i2")])


# ---- every invalid type → 400 (§12.2, §12.9) -------------------------------

INVALID = {
    "missing class": {"base": "H5T_STD_I32LE"},
    "class not a string": {"class": 5, "base": "H5T_STD_I32LE"},
    "unknown class": {"class": "H5T_TIME"},
    "bitfield class": {"class": "H5T_BITFIELD", "base": "H5T_STD_B8LE"},
    "int without base": {"class": "H5T_INTEGER"},
    "int with float base": {"class": "H5T_INTEGER", "base": "H5T_IEEE_F32LE"},
    "float with int base": {"class": "H5T_FLOAT", "base": "H5T_STD_I32LE"},
    "int with native base": {"class": "H5T_INTEGER", "base": "H5T_NATIVE_INT"},
    "int with object base": {"class": "H5T_INTEGER", "base": I32},
    "dims on int": {"class": "H5T_INTEGER", "base": "H5T_STD_I32LE", "dims": [2]},
    "dims on string": dict(FSTR7, dims=[2]),
    "string without length": {"class": "H5T_STRING", "charSet": "H5T_CSET_ASCII"},
    "string without charSet": {"class": "H5T_STRING", "length": 5},
    "string bad charSet": {"class": "H5T_STRING", "length": 5, "charSet": "H5T_CSET_LATIN1"},
    "string length 0": dict(FSTR7, length=0),
    "string length negative": dict(FSTR7, length=-3),
    "string length float": dict(FSTR7, length=7.5),
    "string length bool": dict(FSTR7, length=True),
    "string length other string": dict(FSTR7, length="H5T_VAR"),
    "string bad strPad": dict(FSTR7, strPad="H5T_STR_FOO"),
    "compound no fields": {"class": "H5T_COMPOUND"},
    "compound empty fields": {"class": "H5T_COMPOUND", "fields": []},
    "compound fields not list": {"class": "H5T_COMPOUND", "fields": {"a": I32}},
    "compound field not object": {"class": "H5T_COMPOUND", "fields": ["H5T_STD_I32LE"]},
    "compound field without name": {"class": "H5T_COMPOUND", "fields": [{"type": I32}]},
    "compound field empty name": {"class": "H5T_COMPOUND", "fields": [{"name": "", "type": I32}]},
    "compound field name not str": {"class": "H5T_COMPOUND", "fields": [{"name": 3, "type": I32}]},
    "compound duplicate names": {"class": "H5T_COMPOUND",
                                 "fields": [{"name": "a", "type": I32}, {"name": "a", "type": I32}]},
    "compound non-ASCII name": {"class": "H5T_COMPOUND", "fields": [{"name": "tempé", "type": I32}]},
    "compound field without type": {"class": "H5T_COMPOUND", "fields": [{"name": "a"}]},
    "compound field bad type": {"class": "H5T_COMPOUND",
                                "fields": [{"name": "a", "type": "H5T_NATIVE_INT"}]},
    "compound field bad nested": {"class": "H5T_COMPOUND", "fields": [
        {"name": "a", "type": {"class": "H5T_COMPOUND", "fields": [
            {"name": "b", "type": {"class": "H5T_FLOAT", "base": "H5T_STD_I8LE"}}]}}]},
    "array without dims": {"class": "H5T_ARRAY", "base": I32},
    "array without base": {"class": "H5T_ARRAY", "dims": [2]},
    "array dims 0": {"class": "H5T_ARRAY", "dims": [0], "base": I32},
    "array dims empty": {"class": "H5T_ARRAY", "dims": [], "base": I32},
    "array dims str": {"class": "H5T_ARRAY", "dims": ["2"], "base": I32},
    "array dims float": {"class": "H5T_ARRAY", "dims": 2.0, "base": I32},
    "array of compound": {"class": "H5T_ARRAY", "dims": [2],
                          "base": {"class": "H5T_COMPOUND", "fields": [{"name": "a", "type": I32}]}},
    "array of enum": {"class": "H5T_ARRAY", "dims": [2], "base": BOOL},
    "array of vlen": {"class": "H5T_ARRAY", "dims": [2], "base": {"class": "H5T_VLEN", "base": I32}},
    "array of reference": {"class": "H5T_ARRAY", "dims": [2], "base": REF},
    "array of opaque": {"class": "H5T_ARRAY", "dims": [2], "base": {"class": "H5T_OPAQUE", "size": 2}},
    "array of array of compound": {"class": "H5T_ARRAY", "dims": [2], "base": {
        "class": "H5T_ARRAY", "dims": [2],
        "base": {"class": "H5T_COMPOUND", "fields": [{"name": "a", "type": I32}]}}},
    "array bad base name": {"class": "H5T_ARRAY", "dims": [2], "base": "H5T_NATIVE_INT"},
    "enum with string base": {"class": "H5T_ENUM", "base": "H5T_STD_I8LE",
                              "mapping": {"A": 0}},
    "enum with float base": {"class": "H5T_ENUM",
                             "base": {"class": "H5T_FLOAT", "base": "H5T_IEEE_F32LE"},
                             "mapping": {"A": 0}},
    "enum with bad int base": {"class": "H5T_ENUM",
                               "base": {"class": "H5T_INTEGER", "base": "H5T_IEEE_F32LE"},
                               "mapping": {"A": 0}},
    "enum without mapping": {"class": "H5T_ENUM", "base": {"class": "H5T_INTEGER",
                                                           "base": "H5T_STD_I8LE"}},
    "enum empty mapping": {"class": "H5T_ENUM", "base": {"class": "H5T_INTEGER",
                                                         "base": "H5T_STD_I8LE"}, "mapping": {}},
    "enum mapping not object": {"class": "H5T_ENUM", "base": {"class": "H5T_INTEGER",
                                                              "base": "H5T_STD_I8LE"},
                                "mapping": [["A", 0]]},
    "enum non-integer value": {"class": "H5T_ENUM", "base": {"class": "H5T_INTEGER",
                                                             "base": "H5T_STD_I8LE"},
                               "mapping": {"A": "0"}},
    "enum value out of range": {"class": "H5T_ENUM", "base": {"class": "H5T_INTEGER",
                                                              "base": "H5T_STD_U8LE"},
                                "mapping": {"A": 256}},
    "enum bad members": {"class": "H5T_ENUM", "base": {"class": "H5T_INTEGER",
                                                       "base": "H5T_STD_I8LE"},
                         "members": [{"name": "A"}]},
    "opaque without size": {"class": "H5T_OPAQUE"},
    "opaque size 0": {"class": "H5T_OPAQUE", "size": 0},
    "opaque size str": {"class": "H5T_OPAQUE", "size": "16"},
    "reference without base": {"class": "H5T_REFERENCE"},
    "reference bad base": {"class": "H5T_REFERENCE", "base": "H5T_STD_REF"},
    "reference int base": {"class": "H5T_REFERENCE", "base": "H5T_STD_I32LE"},
    "reference length 0": {"class": "H5T_REFERENCE", "base": "H5T_STD_REF_OBJ", "length": 0},
    "reference obj variable": {"class": "H5T_REFERENCE", "base": "H5T_STD_REF_OBJ",
                               "length": "H5T_VARIABLE"},
    "vlen without base": {"class": "H5T_VLEN", "size": "H5T_VARIABLE"},
    "vlen bad base name": {"class": "H5T_VLEN", "base": "H5T_NATIVE_INT"},
    "vlen bad base object": {"class": "H5T_VLEN", "base": {"class": "H5T_STRING", "length": 3}},
    "vlen base not type": {"class": "H5T_VLEN", "base": 5},
    "committed id not string": dict(I32, id=5),
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_type(name):
    with pytest.raises(BadRequest):
        T.normalize_type(INVALID[name])


def test_invalid_type_message_is_specific():
    with pytest.raises(BadRequest) as e:
        T.normalize_type(INVALID["compound duplicate names"])
    assert "duplicate" in e.value.message


# ---- valid types: stored form ---------------------------------------------

VALID = {
    "int": I32,
    "float": {"class": "H5T_FLOAT", "base": "H5T_IEEE_F16BE"},
    "fixed string": FSTR7,
    "fixed utf8 string": dict(FSTR7, charSet="H5T_CSET_UTF8"),
    "vlen utf8": VSTR_UTF8,
    "vlen ascii": VSTR_ASCII,
    "string without strPad": {"class": "H5T_STRING", "charSet": "H5T_CSET_ASCII", "length": 3},
    "string spacepad": dict(FSTR7, strPad="H5T_STR_SPACEPAD"),
    "compound": {"class": "H5T_COMPOUND", "fields": [
        {"name": "temp", "type": {"class": "H5T_ARRAY", "dims": [5],
                                  "base": {"class": "H5T_INTEGER", "base": "H5T_STD_I64LE"}}},
        {"name": "pressure", "type": "H5T_IEEE_F16LE"}]},
    "compound of everything": {"class": "H5T_COMPOUND", "fields": [
        {"name": "s", "type": VSTR_UTF8}, {"name": "f", "type": FSTR7},
        {"name": "r", "type": dict(REF, length=38, charSet="H5T_CSET_ASCII")},
        {"name": "v", "type": {"class": "H5T_VLEN", "base": I32}},
        {"name": "c", "type": {"class": "H5T_COMPOUND", "fields": [{"name": "x", "type": I32}]}},
        {"name": "e", "type": BOOL}, {"name": "o", "type": {"class": "H5T_OPAQUE", "size": 3}}]},
    "array nested": {"class": "H5T_ARRAY", "dims": [3], "base": {
        "class": "H5T_ARRAY", "dims": [2], "base": I32}},
    "array int dims": {"class": "H5T_ARRAY", "dims": 4, "base": "H5T_IEEE_F32LE"},
    "array of fixed string": {"class": "H5T_ARRAY", "dims": [2], "base": FSTR7},
    "array of vlen string": {"class": "H5T_ARRAY", "dims": [2], "base": VSTR_ASCII},
    "enum": {"class": "H5T_ENUM", "base": {"class": "H5T_INTEGER", "base": "H5T_STD_I16LE"},
             "mapping": {"RED": 0, "GREEN": 1, "BLUE": 2}},
    "enum members": {"class": "H5T_ENUM", "base": {"class": "H5T_INTEGER", "base": "H5T_STD_I8LE"},
                     "members": [{"name": "FALSE", "value": 0}, {"name": "TRUE", "value": 1}]},
    "bool": BOOL,
    "opaque": {"class": "H5T_OPAQUE", "size": 16, "tag": ""},
    "ref obj": REF,
    "ref obj h5pyd": dict(REF, charSet="H5T_CSET_ASCII", length=48, strPad="H5T_STR_NULLPAD"),
    "ref region": {"class": "H5T_REFERENCE", "base": "H5T_STD_REF_DSETREG"},
    "vlen": {"class": "H5T_VLEN", "base": I32},
    "vlen h5pyd": {"class": "H5T_VLEN", "size": "H5T_VARIABLE", "base": "H5T_STD_I64"},
    "vlen of ref": {"class": "H5T_VLEN", "base": REF},
    "vlen of compound": {"class": "H5T_VLEN", "base": {"class": "H5T_COMPOUND", "fields": [
        {"name": "a", "type": I32}, {"name": "b", "type": VSTR_UTF8}]}},
    "vlen of vlen string": {"class": "H5T_VLEN", "base": VSTR_UTF8},
    "committed": dict(I32, id="t-83d8d88d-2f87bd91-25eb-949188-4402c3"),
    "unknown keys": dict(I32, order="H5T_ORDER_LE", note={"x": [1, 2]}),
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_type_echoed(name):
    t = VALID[name]
    original = copy.deepcopy(t)
    out = T.normalize_type(t)
    assert out == original
    assert t == original                  # input untouched
    # a deep copy: mutating the result does not touch the input
    out["zzz"] = 1
    assert "zzz" not in t
    T.dtype_of(out)                       # buildable


def test_normalize_deep_copies_nested():
    t = copy.deepcopy(VALID["compound"])
    out = T.normalize_type(t)
    out["fields"][0]["type"]["dims"].append(9)
    assert t["fields"][0]["type"]["dims"] == [5]


# ---- dtype_of ----------------------------------------------------------------

def test_dtype_strings():
    assert T.dtype_of(FSTR7) == np.dtype("S7")
    d = T.dtype_of(VSTR_UTF8)
    assert d == np.dtype("O") and d.metadata == {"vlen": str}
    d = T.dtype_of(VSTR_ASCII)
    assert d == np.dtype("O") and d.metadata == {"vlen": bytes}


def test_dtype_vlen():
    d = T.dtype_of({"class": "H5T_VLEN", "base": "H5T_STD_I16BE"})
    assert d == np.dtype("O") and d.metadata["vlen"] == np.dtype(">i2")
    d = T.dtype_of(VALID["vlen of compound"])
    assert d.metadata["vlen"].names == ("a", "b")


def test_dtype_references():
    assert T.dtype_of(REF) == np.dtype("S48")
    assert T.dtype_of(dict(REF, length=38)) == np.dtype("S38")
    d = T.dtype_of(VALID["ref region"])
    assert d == np.dtype("O") and d.metadata == {"vlen": bytes, "ref": "region"}
    assert T.is_variable(VALID["ref region"])
    assert not T.is_variable(REF)
    assert T.item_size(REF) == 48


def test_dtype_opaque_enum_bool():
    assert T.dtype_of(VALID["opaque"]) == np.dtype("V16")
    assert T.dtype_of(VALID["enum"]) == np.dtype("<i2")
    assert T.dtype_of(BOOL) == np.dtype(np.bool_)
    assert T.dtype_of(VALID["enum members"]) == np.dtype(np.bool_)
    assert T.is_bool(BOOL) and T.is_bool(VALID["enum members"])
    assert not T.is_bool(VALID["enum"])
    # an 8-bit *unsigned* FALSE/TRUE enum or one with extra names is not a bool
    u8 = {"class": "H5T_ENUM", "base": {"class": "H5T_INTEGER", "base": "H5T_STD_U8LE"},
          "mapping": {"FALSE": 0, "TRUE": 1}}
    assert not T.is_bool(u8) and T.dtype_of(u8) == np.dtype("u1")
    three = copy.deepcopy(BOOL)
    three["mapping"]["MAYBE"] = 2
    assert not T.is_bool(three) and T.dtype_of(three) == np.dtype("i1")
    assert T.item_size(BOOL) == 1


def test_dtype_compound_packed():
    t = _expected()["objects"]["/g2/table"]["type"]
    d = T.dtype_of(t)
    assert d.itemsize == 33                     # 8+4+8+12+1, no alignment
    assert [d.fields[n][1] for n in d.names] == [0, 8, 12, 20, 32]
    assert T.item_size(t) == 33


def test_dtype_array_nested_flattens():
    d = T.dtype_of(VALID["array nested"])
    assert d.shape == (3, 2) and d.base == np.dtype("<i4")
    assert T.item_size(VALID["array nested"]) == 24
    assert T.array_dims(VALID["array nested"]) == (3, 2)
    assert T.full_shape(VALID["array nested"], (4,)) == (4, 3, 2)
    assert T.full_shape(I32, (4,)) == (4,)
    d = T.dtype_of(VALID["array int dims"])
    assert d.shape == (4,) and d.base == np.dtype("<f4")


def test_dtype_compound_with_array_field():
    d = T.dtype_of(VALID["compound"])
    assert d["temp"].shape == (5,) and d["temp"].base == np.dtype("<i8")
    assert d.itemsize == 5 * 8 + 2


def test_dtype_compound_everything():
    t = VALID["compound of everything"]
    d = T.dtype_of(t)
    assert d["s"].metadata == {"vlen": str}
    assert d["r"] == np.dtype("S38")
    assert d["v"].metadata["vlen"] == np.dtype("<i4")
    assert d["e"] == np.dtype(np.bool_)
    assert d["o"] == np.dtype("V3")
    assert T.is_variable(t)
    assert T.item_size(t) == "H5T_VARIABLE"


@pytest.mark.parametrize("name,variable", [
    ("int", False), ("fixed string", False), ("vlen utf8", True), ("vlen ascii", True),
    ("compound", False), ("compound of everything", True), ("array nested", False),
    ("array of vlen string", True), ("array of fixed string", False), ("enum", False),
    ("bool", False), ("opaque", False), ("ref obj", False), ("ref region", True),
    ("vlen", True), ("vlen of ref", True),
])
def test_is_variable(name, variable):
    assert T.is_variable(VALID[name]) is variable
    assert (T.item_size(VALID[name]) == "H5T_VARIABLE") is variable


def test_compound_with_vlen_in_nested_compound_is_variable():
    t = {"class": "H5T_COMPOUND", "fields": [
        {"name": "a", "type": I32},
        {"name": "b", "type": {"class": "H5T_COMPOUND", "fields": [{"name": "s", "type": VSTR_UTF8}]}}]}
    assert T.is_variable(t)


def test_dtype_of_is_cached():
    t = VALID["compound of everything"]
    assert T.dtype_of(t) is T.dtype_of(copy.deepcopy(t))


def test_dtype_of_invalid_raises_badrequest():
    for bad in ({"class": "H5T_FOO"}, {"class": "H5T_INTEGER"}, "H5T_NATIVE_INT", 5,
                {"class": "H5T_STRING", "length": 0, "charSet": "H5T_CSET_ASCII"},
                {"class": "H5T_FLOAT", "base": float("nan")}):
        with pytest.raises(BadRequest):
            T.dtype_of(bad)


def test_base_kind_and_class():
    assert T.base_kind(I32) == "int"
    assert T.base_kind(VSTR_UTF8) == "vstr"
    assert T.base_kind(VALID["array nested"]) == "array"
    assert T.type_class("H5T_IEEE_F32") == "H5T_FLOAT"
    assert T.type_class(BOOL) == "H5T_ENUM"


# ---- type equality (§12.8) -------------------------------------------------

def test_type_equal():
    assert T.type_equal(I32, {"base": "H5T_STD_I32LE", "class": "H5T_INTEGER"})
    assert T.type_equal("H5T_STD_I32LE", I32)
    assert not T.type_equal(I32, {"class": "H5T_INTEGER", "base": "H5T_STD_I32BE"})
    assert not T.type_equal(FSTR7, dict(FSTR7, strPad="H5T_STR_NULLTERM"))
    a = VALID["compound"]
    b = copy.deepcopy(a)
    b["fields"].reverse()
    assert not T.type_equal(a, b)
    assert not T.type_equal(I32, dict(I32, id="t-1"))
    assert not T.type_equal("H5T_NATIVE_INT", I32)


# ---- the fixture ---------------------------------------------------------------

def _fixture_types():
    out = []
    for path, obj in _expected()["objects"].items():
        if "type" in obj:
            out.append((path, obj["type"]))
        for name, attr in obj.get("attributes", {}).items():
            out.append((f"{path}@{name}", attr["type"]))
    return out


@pytest.mark.parametrize("where,t", _fixture_types(), ids=[w for w, _ in _fixture_types()])
def test_fixture_types_normalize_unchanged(where, t):
    assert T.normalize_type(t) == t
    T.dtype_of(t)


def test_for_clients_adds_the_other_enum_spelling():
    from server.core.types import for_clients
    members = {"class": "H5T_ENUM", "base": {"class": "H5T_INTEGER", "base": "H5T_STD_I8LE"},
               "members": [{"name": "FALSE", "value": 0}, {"name": "TRUE", "value": 1}]}
    shown = for_clients(members)
    assert shown["mapping"] == {"FALSE": 0, "TRUE": 1} and shown["members"] == members["members"]
    assert "mapping" not in members                              # the stored one is untouched
    nested = {"class": "H5T_COMPOUND", "fields": [{"name": "b", "type": members}]}
    assert for_clients(nested)["fields"][0]["type"]["mapping"] == {"FALSE": 0, "TRUE": 1}
    plain = {"class": "H5T_INTEGER", "base": "H5T_STD_I32LE"}
    assert for_clients(plain) is plain
    mapping = {"class": "H5T_ENUM", "base": {"class": "H5T_INTEGER", "base": "H5T_STD_I16LE"},
               "mapping": {"A": 1}}
    assert for_clients(mapping)["members"] == [{"name": "A", "value": 1}]
