"""The binding's thread crossings and argument checks (issue 23, Python part).
Each test is named after what it proves; they run in the ASan build too."""
import math
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import framepool
from framepool import _framepool as C

from test_threads import StalledServer


# ---- calls that release the GIL hold what they use --------------------------------------

def test_save_holds_its_own_reference_while_another_thread_releases(clips, tmp_path):
    """frame.save() encodes with the GIL released; another thread's
    frame.release() meanwhile used to free the pixels under the encoder. Now
    the save holds its own reference: the frame stops being writable (two
    references) while the save runs, release() works, and the PNG has the
    pixels of the frame."""
    r = framepool.open(clips.h264, format="bgr24", size=(1920, 1080))
    frame = r.read()
    assert frame.writable
    expected = np.asarray(frame).copy()
    path = tmp_path / "big.png"
    done = threading.Event()
    errors = []

    def save():
        try:
            frame.save(path)
        except Exception as e:  # reported below
            errors.append(e)
        finally:
            done.set()

    t = threading.Thread(target=save)
    t.start()
    saw_held = False
    while not done.is_set():
        if not frame.writable:  # the save's own reference: it is encoding now
            saw_held = True
            frame.release()     # the other thread lets go mid-save
            break
    t.join(60)
    assert not errors, errors
    assert saw_held, "the save never held a reference of its own"
    assert frame.released
    saved = np.asarray(framepool.open(path, format="bgr24").read())
    assert (saved == expected).all()


def test_memtrack_report_survives_init_on_another_thread():
    """MemTrack.report() judges and prints with the GIL released; __init__
    on another thread replaced (and freed) the tracker under it. Under ASan
    this was a heap-use-after-free; now the report holds its own reference
    and reports on the tracker it started with."""
    t = framepool.MemTrack(capacity=8192)
    started = threading.Event()
    out = []

    def report():
        started.set()
        out.append(t.report())  # long: a verdict over thousands of samples

    for _ in range(5):
        t.__init__(capacity=8192)
        for _ in range(6000):
            t.sample()
        started.clear()
        th = threading.Thread(target=report)
        th.start()
        assert started.wait(60)
        deadline = time.monotonic() + 120
        while th.is_alive() and time.monotonic() < deadline:
            t.__init__(capacity=64)  # replaces the tracker while report() runs
        th.join(60)
        assert not th.is_alive(), "report() never returned"
    assert len(out) == 5 and all(isinstance(s, str) and s for s in out)


def wait_blocked(r, frames, limit=60):
    """Returns once the thread reading r has been inside one read (repr says
    busy, no new frame) for 0.3 s: the server sends nothing more, so it is
    blocked there for good."""
    deadline = time.monotonic() + limit
    since, last = None, -1
    while time.monotonic() < deadline:
        if "busy" in repr(r) and frames[0] == last:
            since = since or time.monotonic()
            if time.monotonic() - since > 0.3:
                return
        else:
            since, last = None, frames[0]
        time.sleep(0.01)
    raise AssertionError(f"the reader never blocked: {r!r}, {frames[0]} frames")


def test_info_and_repr_follow_the_busy_rule(clips):
    """reader.info read the reader's fields while another thread decoded
    with the GIL released. Now info raises RuntimeError like every other
    call, and repr says the reader is busy without reading it."""
    ts = clips.ts_long.read_bytes()
    server = StalledServer(ts[: len(ts) // 4])
    try:
        r = framepool.open(server.url, format="gray8", threads=1)
        out, frames = [], [0]

        def read_all():
            try:
                for _ in r:
                    frames[0] += 1
            except framepool.CancelledError:
                out.append("cancelled")

        t = threading.Thread(target=read_all)
        t.start()
        wait_blocked(r, frames)
        assert "busy in another thread" in repr(r)
        # the stalled server sends nothing more: the thread stays inside its read
        with pytest.raises(RuntimeError, match="another thread"):
            r.info
        with pytest.raises(RuntimeError, match="another thread"):
            r.stats
        r.interrupt()
        t.join(30)
        assert out == ["cancelled"]
        assert r.info["codec"] == "h264"
    finally:
        server.close()


def test_abandoned_open_keeps_path_and_av_options():
    """An open abandoned after Ctrl-C goes on on the reader's helper thread;
    it used to borrow the av_options string Python frees. In a child: Ctrl-C
    during a blocked open with av_options, then the string is freed and the
    heap churned; the helper's open ends when the server closes."""
    code = (
        "import gc, os, signal, socket, threading, time, framepool\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)\n"
        "conns = []\n"
        "threading.Thread(target=lambda: conns.append(s.accept()), daemon=True).start()\n"
        "threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()\n"
        "url = 'tcp://127.0.0.1:%d' % s.getsockname()[1]\n"
        "try:\n"
        "    framepool.open(url, av_options='recv_buffer_size=' + str(65536 * 2),\n"
        "                   timeout=20)\n"
        "except KeyboardInterrupt:\n"
        "    pass\n"
        "junk = [('x' * 40 + str(i)) for i in range(100000)]\n"
        "del junk; gc.collect()\n"
        "while not conns: time.sleep(0.01)\n"
        "conns[0][0].close()\n"
        "time.sleep(0.5)\n"
        "print('DONE')\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "DONE"
    assert "AddressSanitizer" not in p.stderr


# ---- arguments: validated before any conversion ------------------------------------------

@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_timeout_is_refused(clips, value):
    with pytest.raises(ValueError, match=r"timeout must be a finite number in \[0, 1e\+09\]"):
        framepool.open(clips.h264, timeout=value)


@pytest.mark.parametrize("value", [1e300, 1e13, -1])
def test_out_of_range_timeout_is_refused(clips, value):
    with pytest.raises(ValueError, match=r"timeout=.* is out of range \[0, 1e\+09\]"):
        framepool.open(clips.h264, timeout=value)


def test_huge_int_timeout_is_an_overflow_error(clips):
    with pytest.raises(OverflowError, match="timeout"):
        framepool.open(clips.h264, timeout=10 ** 400)


def test_max_held_beyond_32_bits_is_refused_not_wrapped(clips):
    with pytest.raises(ValueError, match=r"max_held=4294967297 is out of range \[1, 4095\]"):
        framepool.open(clips.h264, max_held=2 ** 32 + 1)
    with pytest.raises(OverflowError, match="max_held"):
        framepool.open(clips.h264, max_held=2 ** 64)


@pytest.mark.parametrize("value", [math.inf, 1e300, math.nan, -1.0])
def test_seek_to_an_absurd_time_is_refused_not_frame_0(clips, value):
    r = framepool.open(clips.h264, format="gray8")
    r.read()
    r.read()
    with pytest.raises(ValueError, match="seconds"):
        r.seek(value)
    assert r.read().index == 2  # the reader did not move


@pytest.mark.parametrize("size,exc", [("ab", TypeError), (b"ab", TypeError), (5, TypeError),
                                      ((1, 2, 3), ValueError), ((1.5, 2), TypeError),
                                      ((-1, 2), ValueError), ((2 ** 40, 2), ValueError),
                                      ((1, 2 ** 70), OverflowError), (("a", 2), TypeError)])
def test_bad_size_raises_a_clear_error(clips, size, exc):
    with pytest.raises(exc, match="size"):
        framepool.open(clips.h264, size=size)


@pytest.mark.parametrize("kw", [dict(every=0), dict(every=1.0), dict(threads=65),
                                dict(threads="2"), dict(start=math.nan), dict(end=math.inf),
                                dict(stream=-1), dict(loop=-2), dict(loop_cache=2 ** 63),
                                dict(format=3), dict(av_options=b"x=1"),
                                dict(interpolation="cubic"), dict(interpolation=2),
                                dict(live={"mode": "latest", "queue": 1000}),
                                dict(live={"mode": "latest", "stall": math.inf}),
                                dict(live={"mode": "latest", "max_reconnects": 1.5}),
                                dict(live=3)])
def test_bad_keywords_name_themselves(clips, kw):
    name = next(iter(kw))
    with pytest.raises((TypeError, ValueError, OverflowError)) as e:
        framepool.open(clips.h264, **kw)
    assert name in str(e.value) or "live" in str(e.value)


def test_memtrack_arguments_are_checked():
    with pytest.raises(ValueError, match="capacity"):
        framepool.MemTrack(capacity=-1)
    with pytest.raises(OverflowError, match="min_warmup"):
        framepool.MemTrack(min_warmup=2 ** 64)
    with pytest.raises(ValueError, match=r"min_warmup=4294967296 is out of range"):
        framepool.MemTrack(min_warmup=2 ** 32)
    with pytest.raises(TypeError, match="capacity"):
        framepool.MemTrack(capacity="10")
    t = framepool.MemTrack()
    with pytest.raises(ValueError, match="misses"):
        t.note_pool_misses(-1)


def test_interpolation_chooses_the_scaler(clips):
    def first(**kw):
        r = framepool.open(clips.h264, format="gray8", size=(97, 61), **kw)
        return np.asarray(r.read()).astype(int)
    near, area, default = first(interpolation="nearest"), first(interpolation="area"), first()
    assert (first(interpolation="bilinear") == default).all()  # bilinear is the default
    assert (near != area).any()
    # nearest-neighbour copies source pixels: every value it outputs exists in the source
    src = np.asarray(framepool.open(clips.h264, format="gray8").read())
    assert set(np.unique(near)) <= set(np.unique(src))


# ---- a live reader that gives up says why --------------------------------------------------

def refused_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return "tcp://user:hunter2@127.0.0.1:%d" % s.getsockname()[1]


def test_live_reader_that_gave_up_raises_its_reason():
    live = {"mode": "latest", "max_reconnects": 2, "reconnect_min": 0.01,
            "reconnect_max": 0.02}
    r = framepool.open(refused_url(), live=live, timeout=30)
    with pytest.raises(framepool.Error, match="gave up after 2 failed tries") as e:
        r.read()
    assert "hunter2" not in str(e.value)
    assert "refused" in str(e.value).lower() or "connect" in str(e.value).lower()
    with pytest.raises(framepool.Error, match="gave up"):
        next(iter(r))  # not StopIteration


# ---- readers() and interrupt_all() -------------------------------------------------------

def test_readers_lists_the_open_readers_of_this_process(clips):
    before = set(map(id, C.readers()))
    a = framepool.open(clips.h264)
    b = framepool.open(clips.mpeg4)
    now = [r for r in C.readers() if id(r) not in before]
    assert set(map(id, now)) == {id(a), id(b)}
    a.close()
    assert a not in C.readers() and b in C.readers()
    del b
    assert all(r.closed is False for r in C.readers())


def test_interrupt_all_ends_blocked_reads_on_other_threads(clips):
    ts = clips.ts_long.read_bytes()
    servers = [StalledServer(ts[: len(ts) // 5]) for _ in range(2)]
    try:
        readers = [framepool.open(s.url, format="gray8", threads=1) for s in servers]
        results, counts = [], [[0], [0]]

        def read_all(r, count):
            try:
                for _ in r:
                    count[0] += 1
                results.append("ended")
            except framepool.CancelledError:
                results.append("cancelled")

        threads = [threading.Thread(target=read_all, args=(r, n)) for r, n in zip(readers, counts)]
        for t in threads:
            t.start()
        for r, n in zip(readers, counts):
            wait_blocked(r, n)
        # both threads are inside a read that waits for data that never comes
        assert C.interrupt_all() >= 2
        for t in threads:
            t.join(30)
        assert results == ["cancelled", "cancelled"]
        for r in readers:
            r.close()
    finally:
        for s in servers:
            s.close()
