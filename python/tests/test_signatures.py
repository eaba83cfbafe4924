"""Every public callable of framepool._framepool has a signature that
inspect.signature reads and a docstring; every keyword, property, info and
stats key is documented (issue 24)."""
import inspect
import re

import pytest

import framepool
from framepool import _framepool as C

PUBLIC = sorted(n for n in dir(C) if not n.startswith("_") and callable(getattr(C, n)))
TYPES = [C.Frame, C.Reader, C.Plane, C.MemTrack, C.Budget]


def members():
    for t in TYPES:
        for name, v in vars(t).items():
            if name in ("__new__", "__init__", "__doc__") or not callable(v):
                continue
            yield t.__name__ + "." + name, getattr(t, name)


@pytest.mark.parametrize("name", PUBLIC)
def test_signature_of_every_public_callable(name):
    obj = getattr(C, name)
    inspect.signature(obj)  # raises ValueError when there is none
    assert obj.__doc__ and obj.__doc__.strip(), name
    assert "--\n" not in obj.__doc__, "the signature block leaks into the doc"


@pytest.mark.parametrize("name,obj", list(members()))
def test_signature_and_doc_of_every_method(name, obj):
    inspect.signature(obj)
    assert obj.__doc__ and obj.__doc__.strip(), name


def test_every_property_has_a_doc():
    for t in TYPES:
        for name, v in vars(t).items():
            if type(v).__name__ == "getset_descriptor" and not name.startswith("__"):
                assert v.__doc__ and v.__doc__.strip(), f"{t.__name__}.{name}"


def test_open_documents_every_keyword():
    sig = inspect.signature(C.open)
    for p in sig.parameters:
        assert re.search(rf"\b{p}\b[:,]", C.open.__doc__), p


def test_info_and_stats_keys_are_documented(clips):
    r = framepool.open(clips.h264, format="bgr24")
    r.read()
    info_doc, stats_doc = C.Reader.info.__doc__, C.Reader.stats.__doc__
    for k in r.info:
        assert re.search(rf"\b{k}\b", info_doc), k
    assert "source:" not in info_doc and "source" not in r.info  # no such key
    for k in r.stats:
        assert re.search(rf"\b{k}\b", stats_doc), k
    for k in r.stats["pool"]:
        assert re.search(rf"\b{k}\b", stats_doc), k
    budget_doc = C.Budget.stats.__doc__
    for k in framepool.Budget(1).stats:
        assert re.search(rf"\b{k}\b", budget_doc), k
    result = framepool.MemTrack().result()
    for k in result:
        assert re.search(rf"\b{k}\b", C.MemTrack.result.__doc__), k
