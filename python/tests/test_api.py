"""The public API as a type checker and `help()` see it: no builtin shadowed
by `from framepool import *`, stubs (_framepool.pyi) that name exactly what
the extension has, and inspect.signature on every public callable."""
import ast
import enum
import builtins
import inspect
import pathlib

import pytest

import framepool
from framepool import _framepool

STUB = pathlib.Path(framepool.__file__).parent / "_framepool.pyi"

# Names declared in the stubs ahead of an extension build that adds them
# (empty when the stubs and the extension agree).
PENDING: set[str] = set()
PENDING_MEMBERS: dict[str, set[str]] = {}


def stub_tree():
    """{name: set of member names (for classes) or None} of _framepool.pyi."""
    names = {}
    for node in ast.parse(STUB.read_text()).body:
        if isinstance(node, ast.ClassDef):
            names[node.name] = \
                {n.name for n in node.body if isinstance(n, ast.FunctionDef)} | \
                {n.target.id for n in node.body if isinstance(n, ast.AnnAssign)} | \
                {t.id for n in node.body if isinstance(n, ast.Assign) for t in n.targets}
        elif isinstance(node, ast.FunctionDef):
            names[node.name] = None
        elif isinstance(node, ast.AnnAssign):
            names[node.target.id] = None
    return names


def stub_params():
    """{qualified name: [parameter names]} of the functions in the stubs."""
    out = {}
    for node in ast.parse(STUB.read_text()).body:
        fns = [(node.name, node)] if isinstance(node, ast.FunctionDef) else \
              [(f"{node.name}.{n.name}", n) for n in node.body
               if isinstance(n, ast.FunctionDef)] if isinstance(node, ast.ClassDef) else []
        for name, fn in fns:
            a = fn.args
            out[name] = [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs]
    return out


def public(obj):
    return {n for n in dir(obj) if not n.startswith("_")}


def test_star_import_shadows_no_builtin():
    ns = {}
    exec("from framepool import *", ns)
    shadowed = sorted(set(ns) & set(dir(builtins)) - {"__builtins__"})
    assert not shadowed, f"`from framepool import *` shadows builtins {shadowed}"
    assert "open" not in framepool.__all__
    assert callable(framepool.open)


def test_all_names_exist():
    missing = [n for n in framepool.__all__ if not hasattr(framepool, n)]
    assert not missing


def test_stubs_name_what_the_extension_has():
    stubs = stub_tree()
    runtime = public(_framepool)
    assert not runtime - set(stubs), f"not in {STUB.name}: {sorted(runtime - set(stubs))}"
    extra = set(stubs) - runtime - PENDING
    assert not extra, f"in {STUB.name} but not in the extension: {sorted(extra)}"
    for name, members in stubs.items():
        if members is None or not hasattr(_framepool, name):
            continue
        cls = getattr(_framepool, name)
        if issubclass(cls, BaseException):
            continue
        # an IntEnum's public names are its members (plus int's own methods)
        have = set(cls.__members__) if issubclass(cls, enum.Enum) else public(cls)
        assert not have - members, f"{name}: not in the stubs: {sorted(have - members)}"
        only = {m for m in members if not m.startswith("_")} - have - \
            PENDING_MEMBERS.get(name, set())
        assert not only, f"{name}: in the stubs only: {sorted(only)}"


def public_callables():
    """Module functions, the methods of the classes, and the classes Python
    code may construct (MemTrack; Reader, Frame and Plane come from open())."""
    out = []
    for name in sorted(public(_framepool)):
        obj = getattr(_framepool, name)
        if inspect.isclass(obj):
            if issubclass(obj, (BaseException, enum.Enum)):
                continue  # exceptions; ErrorCode's methods are int's
            if name == "MemTrack":
                out.append((name, obj))
            for m in sorted(public(obj)):
                attr = inspect.getattr_static(obj, m)
                if callable(attr) and not isinstance(attr, property) and \
                        type(attr).__name__ != "getset_descriptor":
                    out.append((f"{name}.{m}", getattr(obj, m)))
        elif callable(obj):
            out.append((name, obj))
    return out


def test_signature_of_every_public_callable_matches_the_stubs():
    params = stub_params()
    failed = []
    for name, fn in public_callables():
        try:
            sig = inspect.signature(fn)
        except (ValueError, TypeError) as e:
            failed.append(f"{name}: {e}")
            continue
        got = [p for p in sig.parameters if p != "self"]
        key = f"{name}.__init__" if inspect.isclass(fn) else name
        want = [p for p in params.get(key, []) if p != "self"]
        if key in params and got != want:
            failed.append(f"{name}: signature {sig}, stubs say {want}")
    assert not failed, "\n".join(failed)


def test_public_callables_have_docstrings():
    undocumented = [n for n, fn in public_callables() if not (fn.__doc__ or "").strip()]
    assert not undocumented, undocumented


# ---- error codes ---------------------------------------------------------------------

# The C library's FP_E* values (include/framepool/base.h), written out.
C_CODES = {"EINVAL": -22, "ENOMEM": -12, "EAGAIN": -11, "ETIMEDOUT": -110,
           "ECANCELED": -125, "ENOENT": -2, "EBUSY": -16, "ELIMIT": -0x46500001,
           "EFORMAT": -0x46500002, "ENOSTREAM": -0x46500003, "EDECODE": -0x46500004,
           "EIO": -0x46500005, "ENODISPLAY": -0x46500006, "EUNKNOWN": -0x46500007,
           "EHELD": -0x46500008}


def test_error_codes_are_the_c_values():
    assert issubclass(framepool.ErrorCode, enum.IntEnum)
    assert {m.name: m.value for m in framepool.ErrorCode} == C_CODES
    for name, value in C_CODES.items():
        const = getattr(framepool, name)
        assert const is framepool.ErrorCode[name] and const == value, name
        assert name in framepool.ErrorCode.__doc__, name
    assert "ErrorCode" in framepool.__all__
    assert "ELIMIT" not in framepool.__all__  # errno's names stay errno's under import *


def test_exception_codes_are_error_codes(clips, tmp_path):
    with pytest.raises(framepool.NotFoundError) as e:
        framepool.open("/nonexistent/framepool/clip.mp4")
    assert e.value.code is framepool.ENOENT
    bad = tmp_path / "text.mp4"
    bad.write_text("not a video\n" * 100)
    with pytest.raises(framepool.FormatError) as e:
        framepool.open(bad)
    assert e.value.code is framepool.EFORMAT and e.value.code == -0x46500002
    reader = framepool.open(clips.h264, max_held=2)
    kept = []
    with pytest.raises(framepool.LimitError) as e:
        for frame in reader:
            kept.append(frame)
    # the reader's own max_held bound: a LimitError whose code is EHELD
    assert e.value.code is framepool.EHELD and e.value.code != framepool.ELIMIT
    assert repr(e.value.code) == "<ErrorCode.EHELD: -1179648008>"
    for frame in kept:
        frame.release()
    reader.close()
