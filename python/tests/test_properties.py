"""Property-based tests (Hypothesis, Debian's python3-hypothesis): every
argument of open, seek, the Frame methods and MemTrack, given random values
of every type, never crashes the interpreter and raises only the documented
exceptions: TypeError, ValueError (framepool.InvalidError and
UnicodeError included), OverflowError, IndexError (Frame.plane),
BufferError (exports), and framepool.Error subclasses.

Several thousand examples in all; FP_HYPOTHESIS_SCALE multiplies them
(e.g. 0.2 for a quick run, 5 for a long one)."""
import math
import os
import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import framepool
from framepool import _framepool as C

SCALE = float(os.environ.get("FP_HYPOTHESIS_SCALE", "1"))
DOCUMENTED = (TypeError, ValueError, OverflowError, framepool.Error)


def examples(n):
    return settings(max_examples=max(1, int(n * SCALE)), deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


# Values of every type: numbers at and beyond every boundary, strings, bytes,
# containers, None, objects.
EDGE_INTS = [0, 1, -1, 2, 63, 64, 255, 256, 4095, 4096, 16384, 16385, 2 ** 31 - 1, 2 ** 31,
             2 ** 32 + 1, 2 ** 63 - 1, 2 ** 63, -2 ** 63, -2 ** 63 - 1, 2 ** 64, 10 ** 30]
EDGE_FLOATS = [0.0, -0.0, 0.5, -0.5, 1e-9, 1e9, 1e9 + 1, 1e13, 1e300, -1e300, math.inf,
               -math.inf, math.nan, 5e-324]
scalars = st.one_of(
    st.none(), st.booleans(), st.sampled_from(EDGE_INTS), st.integers(),
    st.integers(-3, 40), st.sampled_from(EDGE_FLOATS), st.floats(),
    st.floats(-2, 20), st.text(max_size=12), st.binary(max_size=12),
    st.sampled_from(["latest", "all", "bgr24", "gray8", "native", "yuv420p", "nearest",
                     "area", "bicubic", "x=1", "mode", "", "\x00", "\udcff"]),
    st.just(object()), st.just(b"\x00"), st.just(bytearray(b"ab")))
anything = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(inner, inner),
                            st.dictionaries(st.one_of(st.text(max_size=15), st.sampled_from(
                                ["mode", "queue", "stall", "reconnect_min", "reconnect_max",
                                 "max_reconnects", "repeat_ok", "open_timeout", "buffer"]),
                                st.integers(), st.none(),
                                st.binary(max_size=4)), inner, max_size=4)),
    max_leaves=6)

KEYWORDS = ["format", "size", "every", "start", "end", "threads", "max_held", "live",
            "timeout", "stream", "convert_ahead", "prefill", "av_options", "loop",
            "loop_cache", "interpolation", "frame_threads", "budget"]

# Budgets from tiny (every frame refused) to roomy, and any other value.
budgets = st.integers(1, 64 * 2**20).map(C.Budget)
any_budget = st.one_of(budgets, anything)


@pytest.fixture(scope="module")
def tiny(clips):
    return str(clips.tiny)


def bounded(kw):
    """Keeps a valid combination cheap: no huge frames, no endless loops."""
    size = kw.get("size")
    if isinstance(size, (tuple, list)) and len(size) == 2:
        try:
            if all(isinstance(v, int) and v > 512 for v in size if v is not None):
                kw["size"] = (64, 48)
        except TypeError:
            pass
    return kw


def try_open(source, **kw):
    try:
        r = C.open(source, **bounded(kw))
    except DOCUMENTED:
        return
    try:
        looping = kw.get("loop") not in (None, 0, False)
        live = kw.get("live") not in (None, False)
        if not looping and not live:
            try:
                f = r.read()
                if f is not None:
                    f.release()
            except DOCUMENTED:
                pass
        r.info if not r.closed else None
    except RuntimeError:
        raise
    except DOCUMENTED:
        pass
    finally:
        r.close()


@pytest.mark.parametrize("keyword", KEYWORDS)
def test_open_with_any_value_of_one_keyword(tiny, keyword):
    @examples(180)
    @given(value=anything)
    def check(value):
        try_open(tiny, **{keyword: value})
    check()


def test_open_with_any_budget_and_keywords(tiny):
    @examples(300)
    @given(budget=any_budget, kw=st.dictionaries(st.sampled_from(KEYWORDS[:-1]), anything,
                                                 max_size=3))
    def check(budget, kw):
        try_open(tiny, budget=budget, **kw)
        if isinstance(budget, C.Budget):
            s = budget.stats  # the reader closed: its pools gave every byte back
            assert s["used_bytes"] == 0 and s["peak_bytes"] <= s["max_bytes"], s
    check()


def test_budget_with_any_value():
    @examples(400)
    @given(max_bytes=anything, name=anything)
    def check(max_bytes, name):
        try:
            b = C.Budget(max_bytes, name=name)
        except DOCUMENTED:
            return
        assert b.max_bytes == max_bytes and b.stats["used_bytes"] == 0
        assert repr(b).startswith("<framepool.Budget ")
        try:
            pickle.dumps(b)
            raise AssertionError("a Budget pickled")
        except TypeError:
            pass
    check()


def test_copies_under_any_default_budget(tiny):
    f = C.open(tiny, format="bgr24").read()
    data = pickle.dumps(f)

    @examples(300)
    @given(budget=any_budget, n=st.integers(0, 6), how=st.sampled_from(["copy", "pickle"]))
    def check(budget, n, how):
        try:
            C.set_default_budget(budget)
        except DOCUMENTED:
            assert not isinstance(budget, C.Budget) and budget is not None
            return
        try:
            kept = []
            for _ in range(n):
                try:
                    kept.append(f.copy() if how == "copy" else pickle.loads(data))
                except framepool.LimitError as e:
                    assert e.code == -0x46500001 and "max_bytes=" in str(e), e
            if budget is not None:
                assert budget.stats["used_bytes"] <= budget.stats["max_bytes"]
            del kept
            if budget is not None:
                assert budget.stats["used_bytes"] == 0, budget.stats
        finally:
            C.set_default_budget(None)
    check()
    f.release()


def test_open_with_any_combination(tiny):
    @examples(400)
    @given(kw=st.dictionaries(st.sampled_from(KEYWORDS), anything, max_size=5))
    def check(kw):
        try_open(tiny, **kw)
    check()


def test_open_with_any_source(tiny):
    data = open(tiny, "rb").read()

    @examples(300)
    @given(source=st.one_of(
        anything.filter(lambda v: not (isinstance(v, str) and ":" in v)),
        st.binary(max_size=64),
        st.integers(0, len(data)).map(lambda n: data[:n]),
        st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)).map(
            lambda t: data[:t[0]] + bytes([t[1]]) + data[t[0] + 1:])))
    def check(source):
        if isinstance(source, (str, bytes)) and source in ("-", b"-"):
            return
        try_open(source)
    check()


def test_seek_with_any_value(tiny):
    r = C.open(tiny, format="gray8")

    @examples(500)
    @given(seconds=anything, precise=anything)
    def check(seconds, precise):
        try:
            r.seek(seconds, precise=precise)
        except DOCUMENTED:
            pass
        try:
            f = r.read()
            if f is not None:
                f.release()
        except DOCUMENTED:
            pass
    check()
    r.close()


def test_frame_methods_with_any_value(tiny, tmp_path):
    @examples(500)
    @given(fmt=st.sampled_from([None, "bgr24", "gray8", "nv12", "yuv420p10le", "rgba"]),
           plane=anything, path=anything, ext=st.sampled_from(
               [".png", ".jpg", ".bmp", ".ppm", ".pgm", ".xyz", ""]))
    def check(fmt, plane, path, ext):
        r = C.open(tiny, format=fmt)
        f = r.read()
        try:
            try:
                p = f.plane(plane)
                del p
            except (IndexError, *DOCUMENTED):
                pass
            if isinstance(path, (str, bytes)):  # inside tmp_path, whatever the text
                safe = path.replace("/" if isinstance(path, str) else b"/",
                                    "_" if isinstance(path, str) else b"_")
                path = (str(tmp_path).encode() + b"/" if isinstance(safe, bytes)
                        else str(tmp_path) + "/") + safe + (ext if isinstance(safe, str)
                                                           else ext.encode())
            try:
                f.save(path)
            except DOCUMENTED:
                pass
            for name in ("shape", "pts", "time", "index", "flags", "format", "planes",
                         "views", "site", "writable", "pool"):
                try:
                    getattr(f, name)
                except (BufferError, *DOCUMENTED):
                    pass
            try:
                g = pickle.loads(pickle.dumps(f))
                assert g.format == f.format
            except DOCUMENTED:
                pass
            try:
                f.tobytes()
                f.copy().make_writable()
            except (BufferError, *DOCUMENTED):
                pass
        finally:
            f.release()
            r.close()
    check()


def test_memtrack_with_any_value():
    @examples(400)
    @given(capacity=anything, min_warmup=anything, manual=anything, misses=anything)
    def check(capacity, min_warmup, manual, misses):
        try:
            t = C.MemTrack(capacity=capacity, min_warmup=min_warmup, manual_misses=manual)
        except DOCUMENTED:
            return
        t.sample()
        try:
            t.note_pool_misses(misses)
        except DOCUMENTED:
            pass
        assert t.result()["frames"] == 1
        assert isinstance(t.report(), str)
    check()


def test_frame_from_state_with_any_value():
    @examples(300)
    @given(state=st.lists(anything, min_size=0, max_size=10))
    def check(state):
        try:
            C._frame_from_state(*state)
        except DOCUMENTED:
            pass
    check()
