"""framepool.Budget (fp_budget): readers' pools charged through
open(budget=...), Frame.copy() and unpickled frames charged to the default
budget (set_default_budget) and given back when freed; LimitError over the
cap; threads; a forked child; a spawned process that unpickles frames under
its own budget (issue 24: "unpickled frames are ordinary framepool frames,
budget-counted")."""
import copy
import inspect
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import time
import weakref

import numpy as np
import pytest

import framepool
from framepool import _framepool as C

from fork_child import wait_child

FP_ELIMIT = framepool.ELIMIT
KEYS = {"max_bytes", "used_bytes", "peak_bytes", "refusals", "reclaimed", "pools"}


@pytest.fixture(autouse=True)
def no_default_budget():
    """Every test starts and ends without a default budget."""
    framepool.set_default_budget(None)
    yield
    framepool.set_default_budget(None)


def test_budget_object():
    b = framepool.Budget(5 * 2**20, name="worker-1")
    assert b.max_bytes == 5 * 2**20 and b.name == "worker-1"
    s = b.stats
    assert set(s) == KEYS, s
    assert s["max_bytes"] == 5 * 2**20 and s["used_bytes"] == 0 and s["pools"] == 0
    assert repr(b) == "<framepool.Budget 'worker-1' max_bytes=5242880 used_bytes=0 pools=0>"
    assert framepool.Budget(1).name == "budget"
    w = weakref.ref(b)
    assert w() is b
    del b
    assert w() is None


@pytest.mark.parametrize("how", [pickle.dumps, copy.copy, copy.deepcopy])
def test_budget_refuses_pickling(how):
    b = framepool.Budget(2**20, name="w")
    with pytest.raises(TypeError, match=r"cannot pickle framepool.Budget 'w'.*each process"):
        how(b)


@pytest.mark.parametrize("bad,exc", [(0, ValueError), (-1, ValueError), (1.5, TypeError),
                                     ("1", TypeError), (None, TypeError),
                                     (2**64, OverflowError)])
def test_budget_arguments(bad, exc):
    with pytest.raises(exc, match="max_bytes"):
        framepool.Budget(bad)
    with pytest.raises(TypeError, match="name"):
        framepool.Budget(10, name=3)
    with pytest.raises(ValueError, match="NUL"):
        framepool.Budget(10, name="a\x00b")


def test_signatures():
    assert str(inspect.signature(framepool.Budget)) == "(max_bytes, *, name=None)"
    assert str(inspect.signature(framepool.set_default_budget)) == "(budget, /)"
    assert str(inspect.signature(framepool.get_default_budget)) == "()"
    p = inspect.signature(framepool.open).parameters["budget"]
    assert p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is None
    assert "Budget" in framepool.__all__ and "set_default_budget" in framepool.__all__


def test_default_budget_set_and_get():
    assert framepool.get_default_budget() is None
    a, b = framepool.Budget(10), framepool.Budget(20)
    assert framepool.set_default_budget(a) is None
    assert framepool.get_default_budget() is a
    assert framepool.set_default_budget(b) is a
    assert framepool.set_default_budget(None) is b
    with pytest.raises(TypeError, match="framepool.Budget or None, not int"):
        framepool.set_default_budget(10)
    assert framepool.get_default_budget() is None


# ---- readers --------------------------------------------------------------------------------

def test_a_reader_charges_its_budget(clips):
    b = framepool.Budget(64 * 2**20)
    with framepool.open(clips.h264, format="bgr24", budget=b) as r:
        f = r.read()
        s = b.stats
        assert s["pools"] == 2, s  # decoder and conversion pools
        assert s["used_bytes"] >= r.stats["pool"]["bytes"] + r.stats["out_pool"]["bytes"] > 0
        assert s["used_bytes"] <= s["max_bytes"]
        del f
    # the reader let go of its pools: their idle buffers are freed
    assert b.stats["used_bytes"] == 0 and b.stats["pools"] == 0, b.stats


def test_two_readers_share_one_budget(clips):
    b = framepool.Budget(64 * 2**20)
    r1 = framepool.open(clips.h264, format="bgr24", budget=b)
    r2 = framepool.open(clips.mpeg4, format="gray8", budget=b)
    r1.read(), r2.read()
    assert b.stats["pools"] == 4
    r1.close(), r2.close()


def test_a_file_reader_over_its_budget_raises_limit_error(clips):
    """C: a full budget first frees idle buffers elsewhere; then a file
    reader's next fails with FP_ELIMIT."""
    b = framepool.Budget(100_000, name="tiny")
    with pytest.raises(framepool.LimitError) as e:
        with framepool.open(clips.h264, format="bgr24", budget=b) as r:
            for _ in r:
                pass
    assert e.value.code == FP_ELIMIT and e.value.code is framepool.ErrorCode.ELIMIT, e.value
    # the message names the full budget (cap, bytes in use, the buffer asked
    # for) and what to do, not max_held (a bound this reader never reached)
    msg = str(e.value)
    assert "budget is full" in msg and "100000 bytes" in msg, msg
    assert "raise the budget" in msg and "fewer readers" in msg, msg
    assert "max_held" not in msg, msg
    s = b.stats
    assert s["refusals"] >= 1 and s["used_bytes"] <= s["max_bytes"], s


def test_a_live_reader_over_its_budget_drops_frames():
    """C: a live reader loses the frames its full budget cannot hold and
    counts them (stats['budget_drops']); the budget is never exceeded."""
    from test_reader import free_port, serve_tcp
    port = free_port()
    server = serve_tcp(port)  # 320x240: a 115 KB frame never fits 50 KB
    b = framepool.Budget(50_000, name="tiny")
    try:
        with framepool.open(f"tcp://127.0.0.1:{port}", live="latest", budget=b,
                            timeout=0.5) as r:
            deadline = time.monotonic() + 30
            while r.stats["budget_drops"] < 3 and time.monotonic() < deadline:
                try:
                    f = r.read()
                    raise AssertionError(f"a frame over the budget was delivered: {f}")
                except framepool.TimeoutError:
                    pass
            drops = r.stats["budget_drops"]
    finally:
        server.kill()
        server.wait()
    s = b.stats
    assert drops >= 3, (drops, s)
    assert s["refusals"] >= drops and s["peak_bytes"] <= s["max_bytes"], (drops, s)


def test_a_live_reader_over_its_budget_goes_on_and_frames_come_again():
    """C: a refused buffer is a lost frame (budget_drops), not a decode
    error: the connection goes on (no reconnect however many frames are
    lost), and frames come again once the caller releases the ones it kept.
    The budget holds the decoder's pictures (about 12 of 120 KB) but not
    the 64 frames Python may keep."""
    from test_reader import free_port, serve_tcp
    port = free_port()
    server = serve_tcp(port)
    b = framepool.Budget(1_500_000, name="live")
    drops_wanted = 48  # 3 x the error budget's minimum: as decode errors, they would reconnect
    try:
        live = {"mode": "all", "reconnect_min": 0.1, "reconnect_max": 0.5, "stall": 120}
        with framepool.open(f"tcp://127.0.0.1:{port}", live=live, budget=b, threads=1,
                            max_held=64, timeout=0.5) as r:
            held, tries = [], None
            deadline = time.monotonic() + 60
            # the budget's refusals count at once (stats['budget_drops'] with
            # the reader's next frame)
            while b.stats["refusals"] < drops_wanted and time.monotonic() < deadline:
                try:
                    held.append(r.read())
                except framepool.TimeoutError:
                    continue
                if tries is None:  # connected: tries before ffmpeg listened don't count
                    tries = r.stats["reconnects"]
                assert len(held) < 64, (b.stats, r.stats)
            bs, s = b.stats, r.stats
            assert bs["refusals"] >= drops_wanted, (len(held), bs, s)
            assert bs["peak_bytes"] <= bs["max_bytes"], bs
            assert s["reconnects"] == tries and s["connected"], s
            assert s["decode_errors"] < 16, s
            for f in held:
                f.release()
            got = 0
            deadline = time.monotonic() + 60
            while got < 25 and time.monotonic() < deadline:
                try:
                    r.read().release()
                    got += 1
                except framepool.TimeoutError:
                    pass
            s = r.stats
            assert got == 25, (got, s)
            assert s["reconnects"] == tries and s["connects"] == 1, s
            # a lost frame per packet refused buffers (MPEG-4: one buffer a picture)
            assert bs["refusals"] // 2 <= s["budget_drops"] <= bs["refusals"], (s, bs)
            assert s["decode_errors"] < 16, s
    finally:
        server.kill()
        server.wait()


def test_open_budget_of_a_wrong_type(clips):
    with pytest.raises(TypeError, match="budget must be a framepool.Budget or None, not int"):
        framepool.open(clips.h264, budget=10**6)


def test_the_reader_keeps_its_budget_alive(clips):
    b = framepool.Budget(64 * 2**20)
    w = weakref.ref(b)
    r = framepool.open(clips.h264, format="bgr24", budget=b)
    del b
    assert w() is None  # the Python object goes; the C budget lives in the reader's pools
    assert sum(1 for _ in r) == 50
    r.close()


# ---- copies and unpickled frames ------------------------------------------------------------

def test_copies_and_unpickled_frames_charge_the_default_budget(clips):
    f = framepool.open(clips.h264, format="bgr24").read()
    data = pickle.dumps(f)
    b = framepool.Budget(16 * 2**20, name="copies")
    framepool.set_default_budget(b)
    c = f.copy()
    assert c.pool == "copies 320x240 bgr24"
    one = b.stats["used_bytes"]
    assert one >= 320 * 240 * 3, b.stats
    g = pickle.loads(data)
    assert b.stats["used_bytes"] == 2 * one and b.stats["pools"] == 1, b.stats
    assert (np.asarray(g) == np.asarray(f)).all() and (np.asarray(c) == np.asarray(f)).all()
    for name in ("index", "time", "pts", "wall_time", "flags", "format"):
        assert getattr(g, name) == getattr(f, name) == getattr(c, name), name
    assert g.writable and c.writable
    np.asarray(g)[0, 0] = (1, 2, 3)  # writable pixels of its own
    del c
    assert b.stats["used_bytes"] == one, b.stats  # released when freed
    g.release()
    assert b.stats["used_bytes"] == 0 and b.stats["peak_bytes"] == 2 * one, b.stats


def test_without_a_default_budget_copies_are_standalone(clips):
    f = framepool.open(clips.h264, format="bgr24").read()
    assert f.copy().pool is None and pickle.loads(pickle.dumps(f)).pool is None


def test_frames_keep_the_budget_they_were_made_under(clips):
    f = framepool.open(clips.h264, format="gray8").read()
    a = framepool.Budget(2**20)
    framepool.set_default_budget(a)
    c = f.copy()
    framepool.set_default_budget(None)
    wa = weakref.ref(a)
    del a
    assert wa() is None
    assert int(np.asarray(c).sum()) == int(np.asarray(f).sum())
    c.release()  # its pool (and the C budget) outlived the Budget object


@pytest.mark.parametrize("how", ["copy", "unpickle"])
def test_over_the_default_budget_raises_limit_error(clips, how):
    f = framepool.open(clips.h264, format="bgr24").read()
    data = pickle.dumps(f)
    b = framepool.Budget(400_000, name="thumbs")
    framepool.set_default_budget(b)
    kept = f.copy()  # 320x240x3 = 230,400 bytes (+ row padding): one fits, two do not
    with pytest.raises(framepool.LimitError) as e:
        f.copy() if how == "copy" else pickle.loads(data)
    msg = str(e.value)
    assert e.value.code == FP_ELIMIT
    assert "'thumbs'" in msg and "max_bytes=400000" in msg and "320x240 bgr24" in msg, msg
    assert f"{b.stats['used_bytes']} bytes in use" in msg, msg
    assert ("Frame.copy()" if how == "copy" else "unpickling a frame") in msg, msg
    assert b.stats["refusals"] == 1
    del kept
    assert b.stats["used_bytes"] == 0
    g = f.copy() if how == "copy" else pickle.loads(data)  # room again
    assert b.stats["used_bytes"] > 0
    del g


def test_copy_pools_are_bounded(clips):
    """One pool per format and size, at most 8: the least recently used goes."""
    b = framepool.Budget(256 * 2**20)
    framepool.set_default_budget(b)
    for w in range(16, 16 + 12 * 8, 8):
        f = framepool.open(clips.tiny, format="gray8", size=(w, 16)).read()
        c = f.copy()
        assert b.stats["pools"] <= 8 + 2  # 8 copy pools + this reader's two
        del c, f
    assert b.stats["used_bytes"] == 0


def test_threads_share_the_default_budget(clips):
    f = framepool.open(clips.h264, format="bgr24").read()
    data = pickle.dumps(f)
    b = framepool.Budget(8 * 2**20, name="shared")
    framepool.set_default_budget(b)
    errors, limits, made = [], [], []
    start = threading.Barrier(8)

    def work(k):
        try:
            start.wait()
            kept = []
            for i in range(60):
                try:
                    kept.append(f.copy() if (i + k) % 2 else pickle.loads(data))
                    made.append(1)
                except framepool.LimitError as e:
                    assert "'shared'" in str(e)
                    limits.append(1)
                if len(kept) > 3:
                    kept.pop(0).release()
                with framepool.open(clips.tiny, format="gray8", budget=b) as r:
                    r.read()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    ts = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not any(t.is_alive() for t in ts)
    assert not errors, errors
    s = b.stats
    assert made and s["used_bytes"] == 0 and s["peak_bytes"] <= s["max_bytes"], s
    assert s["refusals"] == len(limits), (s, len(limits))


# ---- processes ------------------------------------------------------------------------------

def test_unpickling_in_a_budgeted_process(clips, tmp_path):
    """A frame pickled here and unpickled in another process whose default
    budget is set: charged there, pixels equal, released on free."""
    f = framepool.open(clips.h264, format="bgr24").read()
    (tmp_path / "frame.pickle").write_bytes(pickle.dumps(f))
    np.save(tmp_path / "pixels.npy", np.asarray(f))
    code = textwrap.dedent(f"""
        import pickle, numpy as np, framepool
        b = framepool.Budget(4 * 2**20, name="child")
        framepool.set_default_budget(b)
        g = pickle.loads(open({str(tmp_path / "frame.pickle")!r}, "rb").read())
        used = b.stats["used_bytes"]
        same = bool((np.asarray(g) == np.load({str(tmp_path / "pixels.npy")!r})).all())
        del g
        print("CHILD", used, b.stats["used_bytes"], same, flush=True)
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    _, used, after, same = p.stdout.split()
    assert int(used) >= 320 * 240 * 3 and int(after) == 0 and same == "True", p.stdout


def test_a_forked_child_uses_the_inherited_budget(clips):
    b = framepool.Budget(32 * 2**20, name="parent")
    framepool.set_default_budget(b)
    r = framepool.open(clips.h264, format="bgr24", budget=b)
    f = r.read()
    kept = f.copy()
    before = b.stats["used_bytes"]
    rfd, wfd = os.pipe()
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, always leave with os._exit
        status = 1
        try:
            assert framepool.get_default_budget() is b
            assert b.stats["used_bytes"] == before  # the parent's figures, inherited
            c = f.copy()
            grew = b.stats["used_bytes"] - before
            del c
            back = b.stats["used_bytes"] == before
            with framepool.open(clips.h264, format="gray8", budget=b) as r2:
                n = sum(1 for _ in r2)
            os.write(wfd, f"{grew} {back} {n} {b.stats['used_bytes'] == before}".encode())
            status = 0
        finally:
            os._exit(status)
    os.close(wfd)
    code, _ = wait_child(pid, 60.0)  # "HUNG": killed after 60 s
    took = time.monotonic() - t0
    out = os.read(rfd, 200).decode()
    os.close(rfd)
    assert code == 0, (code, out)
    grew, back, n, after = out.split()
    assert int(grew) >= 320 * 240 * 3 and back == "True" and n == "50" and after == "True"
    assert took < 10, took
    # the parent's budget is its own: its copy is still charged, and freed here
    one = b.stats["used_bytes"]
    del kept
    assert one - b.stats["used_bytes"] >= 320 * 240 * 3
    del f
    r.close()
    assert b.stats["used_bytes"] == 0
