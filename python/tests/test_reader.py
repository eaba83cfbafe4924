"""Reader: iteration that rebinds, max_held and LimitError, options, bad input."""
import gc
import os
import sys

import numpy as np
import pytest

import framepool


def line_of(marker):
    """The line number in this file of the line ending with `# marker`."""
    with open(__file__) as f:
        for n, text in enumerate(f, 1):
            if text.rstrip().endswith("# " + marker):
                return n
    raise LookupError(marker)


def test_iterates_every_frame_with_one_held(clips):
    with framepool.open(clips.h264, format="bgr24", max_held=1) as reader:
        n = 0
        for frame in reader:
            assert reader.held == 1
            assert frame.index == n
            n += 1
        assert n == 50
        assert reader.stats["delivered"] == 50
    assert reader.closed
    assert frame.width == 320  # the last frame is still ours after close


def test_loop_releases_the_previous_frame(clips):
    reader = framepool.open(clips.h264, format="bgr24", max_held=2)
    peaks = []
    for frame in reader:
        peaks.append(reader.stats["out_pool"]["outstanding"])
    # the loop variable's frame plus the one being handed out, never more
    assert max(peaks) == 1
    assert reader.stats["out_pool"]["allocated"] <= 3


def test_limit_error_names_the_lines_holding_frames(clips):
    reader = framepool.open(clips.h264, format="bgr24", max_held=3)
    kept = []
    with pytest.raises(framepool.LimitError) as e:
        for frame in reader:  # holder
            kept.append(frame)
    msg = str(e.value)
    assert "max_held bound of 3" in msg
    assert f"test_reader.py:{line_of('holder')}: 3 frames" in msg
    assert len(kept) == 3 and e.value.code < 0
    assert isinstance(e.value, framepool.Error)
    # releasing one lets the loop go on, without losing a frame
    kept.pop(0).release()
    nxt = reader.read()
    assert nxt.index == 3


def test_limit_error_lists_several_lines(clips):
    reader = framepool.open(clips.h264, format="gray8", max_held=3)
    a = reader.read()  # first holder
    b = reader.read()  # first holder 2
    c = reader.read()  # second holder
    # the last frame is bound to one name only, which a loop would rebind:
    # it is not counted, so one more read succeeds (the C reader's bound is
    # max_held + 1 for that reason) and the next one raises
    d = reader.read()  # third holder
    with pytest.raises(framepool.LimitError) as e:
        reader.read()
    msg = str(e.value)
    assert "holds 4 frames" in msg
    for m in ("first holder", "first holder 2", "second holder", "third holder"):
        assert f"test_reader.py:{line_of(m)}: 1 frame" in msg
    del a, b, c, d


def test_numpy_view_counts_as_held(clips):
    reader = framepool.open(clips.h264, format="bgr24", max_held=2)
    views = []
    with pytest.raises(framepool.LimitError):
        for frame in reader:
            views.append(np.asarray(frame))
    assert len(views) == 2
    views.clear()
    gc.collect()
    assert reader.held <= 1


def test_options_size_every_start_end(clips):
    r = framepool.open(clips.h264, format="bgr24", size=(160, None))
    f = r.read()
    assert np.asarray(f).shape == (120, 160, 3)
    assert r.info["out_width"] == 160 and r.info["width"] == 320
    idx = [f.index for f in framepool.open(clips.h264, format="gray8", every=5)]
    assert idx == list(range(0, 50, 5))
    times = [f.time for f in framepool.open(clips.h264, format="gray8", start=1.0, end=1.5)]
    assert times[0] == pytest.approx(1.0) and max(times) < 1.5 and len(times) == 13


def test_loop(clips):
    once = [np.asarray(f).copy() for f in framepool.open(clips.h264, format="gray8")]
    r = framepool.open(clips.h264, format="gray8", loop=2)
    frames = [(f.index, f.time, np.asarray(f).copy()) for f in r]
    assert len(frames) == 3 * len(once)
    assert [i for i, _, _ in frames] == list(range(3 * len(once)))
    times = [t for _, t, _ in frames]
    assert all(b > a for a, b in zip(times, times[1:]))
    assert times[-1] == pytest.approx((3 * len(once) - 1) / 25)
    assert all((px == once[k % len(once)]).all() for k, (_, _, px) in enumerate(frames))
    assert r.stats["loops"] == 2
    assert r.stats["loops_replayed"] == 2  # a short clip: its passes replayed from memory
    # rewinding the file at each end gives the same pictures
    r = framepool.open(clips.h264, format="gray8", loop=2, loop_cache=-1)
    again = [np.asarray(f).copy() for f in r]
    assert all((px == frames[k][2]).all() for k, px in enumerate(again))
    assert r.stats["loops"] == 2 and r.stats["loops_replayed"] == 0
    with pytest.raises(ValueError, match="loop=-5 is out of range"):
        framepool.open(clips.h264, loop=-5)
    with pytest.raises(ValueError, match="loop_cache=-3 is out of range"):
        framepool.open(clips.h264, loop=1, loop_cache=-3)


def test_seek(clips):
    r = framepool.open(clips.h264, format="gray8")
    first = np.asarray(r.read()).copy()
    r.seek(1.2)
    f = r.read()
    assert f.time == pytest.approx(1.2, abs=1e-6)
    r.seek(0)
    assert (np.asarray(r.read()) == first).all()


def test_info_and_repr(clips):
    r = framepool.open(clips.h264)
    info = r.info
    assert info["codec"] == "h264" and info["native_format"] == "yuv420p"
    assert info["fps"] == pytest.approx(25) and info["frame_count"] == 50
    assert info["max_held"] == 8
    assert "h264" in repr(r) and "320x240" in repr(r)
    r.close()
    assert "closed" in repr(r)
    with pytest.raises(ValueError, match="closed"):
        r.read()


def test_memory_source_and_pathlike(clips):
    data = clips.mpeg4.read_bytes()
    r = framepool.open(data, format="bgr24")
    n = sum(1 for _ in r)
    r2 = framepool.open(clips.mpeg4, format="bgr24")  # pathlib.Path
    assert n == sum(1 for _ in r2) == 30
    assert r.info["codec"] == "mpeg4"


def test_bad_options():
    with pytest.raises(ValueError, match="unknown format"):
        framepool.open("x.mp4", format="bgr25")
    with pytest.raises(ValueError, match="max_held"):
        framepool.open("x.mp4", max_held=0)
    with pytest.raises(ValueError, match="live mode"):
        framepool.open("tcp://127.0.0.1:1", live="newest")
    with pytest.raises(ValueError, match="unknown live option 'stal'"):
        framepool.open("tcp://127.0.0.1:1", live={"mode": "latest", "stal": 1})
    with pytest.raises(ValueError, match="'mode'"):
        framepool.open("tcp://127.0.0.1:1", live={"stall": 1})


# ---- live sources: a camera that goes away and comes back --------------------------------

def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_tcp(port, size="320x240"):
    import subprocess
    return subprocess.Popen(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi",
         "-i", f"testsrc2=size={size}:rate=25", "-t", "60", "-c:v", "mpeg4", "-q:v", "5",
         "-f", "mpegts", f"tcp://127.0.0.1:{port}?listen=1"])


def read_some(reader, n, seconds):
    import time
    t0, got = time.monotonic(), []
    while len(got) < n and time.monotonic() - t0 < seconds:
        frame = reader.read()
        assert frame is not None, "a live reader never ends while reconnecting"
        got.append((frame.width, frame.wall_time, frame.time))
        frame.release()
    return got


def test_live_reader_reconnects_and_stamps_wall_time():
    import time
    port = free_port()
    server = serve_tcp(port)
    try:
        live = {"mode": "latest", "reconnect_min": 0.1, "reconnect_max": 0.5, "stall": 3}
        with framepool.open(f"tcp://user:secret@127.0.0.1:{port}", format="bgr24",
                            live=live, timeout=20) as reader:
            first = read_some(reader, 10, 20)
            assert len(first) == 10
            now = time.time()
            for _, wall, _ in first:
                assert now - 10 < wall <= now + 0.001  # arrival time, on time.time()'s clock
            assert reader.stats["connected"] and reader.stats["connects"] == 1
            # the camera goes away and comes back at another size
            server.kill()
            server.wait()
            server = serve_tcp(port, size="160x120")
            again = read_some(reader, 10, 20)
            assert len(again) == 10 and again[-1][0] == 160
            s = reader.stats
            assert s["connects"] >= 2 and s["reconnects"] >= 1
            times = [t for _, _, t in first + again]
            assert times == sorted(times), "time stays monotonic across the reconnect"
    finally:
        server.kill()
        server.wait()


def test_frame_threads_for_a_live_reader(clips):
    """frame_threads=True: a live reader with threads > 1 decodes with frame
    threads (C's fp_reader_options.frame_threads); a bool, or 0/1."""
    port = free_port()
    server = serve_tcp(port)
    try:
        with framepool.open(f"tcp://127.0.0.1:{port}", format="gray8", live="all",
                            threads=2, frame_threads=True, timeout=20) as reader:
            got = read_some(reader, 10, 20)
            assert len(got) == 10 and reader.stats["connects"] == 1
            assert reader.info["threads"] == 2, reader.info
    finally:
        server.kill()
        server.wait()
    with framepool.open(clips.h264, frame_threads=False) as r:  # files: no effect
        assert r.read().index == 0
    framepool.open(clips.h264, frame_threads=1).close()
    for bad, exc in ((2, ValueError), (-1, ValueError), ("yes", TypeError),
                     (1.0, TypeError), ([], TypeError)):
        with pytest.raises(exc, match="frame_threads"):
            framepool.open(clips.h264, frame_threads=bad)


# ---- bad input: each gives a clear framepool.Error subclass ----------------------------

def test_live_backlog_options_and_stats():
    """live={'buffer': bytes, 'open_timeout': s} reach C's fp_live_options;
    a live reader's stats have every key of framepool.ReaderStats, the
    backlog's among them; a caller that pauses in ALL mode finds the frames
    waiting (as packets), none dropped."""
    import time
    from framepool._types import LiveOptions, ReaderStats
    port = free_port()
    server = serve_tcp(port)
    try:
        live = {"mode": "all", "buffer": 4 << 20, "open_timeout": 15, "stall": 10,
                "queue": 2, "reconnect_min": 0.1, "reconnect_max": 0.5, "max_reconnects": 0,
                "repeat_ok": False}
        assert set(live) == set(LiveOptions.__annotations__)
        with framepool.open(f"tcp://127.0.0.1:{port}", format="gray8", live=live,
                            timeout=20) as reader:
            assert len(read_some(reader, 5, 20)) == 5
            time.sleep(1.0)  # the caller pauses: 25 frames arrive meanwhile
            s = reader.stats
            assert set(s) == set(ReaderStats.__annotations__), set(s) ^ set(
                ReaderStats.__annotations__)
            assert s["packets_queued"] > 0, s
            got = read_some(reader, 25, 20)
            frames = [t for _, _, t in got]
            steps = {round((b - a) * 25) for a, b in zip(frames, frames[1:])}
            assert steps == {1}, f"ALL lost frames during the pause: steps {steps}"
            s = reader.stats
            assert s["dropped"] == 0 and s["packets_dropped"] == 0, s
            assert 0 < s["first_frame"] < 15, s
    finally:
        server.kill()
        server.wait()
    for bad in ({"mode": "all", "buffer": -1}, {"mode": "all", "buffer": 2**30 + 1},
                {"mode": "all", "open_timeout": -1}, {"mode": "all", "open_timeout": 1e6}):
        with pytest.raises((ValueError, OverflowError)) as e:
            framepool.open("tcp://127.0.0.1:9", live=bad)
        key = "buffer" if "buffer" in bad else "open_timeout"
        assert key in str(e.value), str(e.value)


def test_missing_file():
    with pytest.raises(framepool.NotFoundError, match="no such file") as e:
        framepool.open("/nonexistent/framepool/clip.mp4")
    assert isinstance(e.value, FileNotFoundError)
    assert "clip.mp4" in str(e.value)


def test_directory(tmp_path):
    with pytest.raises(framepool.InvalidError, match="directory"):
        framepool.open(tmp_path)


def test_text_file(tmp_path):
    p = tmp_path / "notes.mp4"
    p.write_text("these are not the frames you are looking for\n" * 20)
    with pytest.raises(framepool.FormatError, match="text file"):
        framepool.open(p)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.mp4"
    p.write_bytes(b"")
    with pytest.raises(framepool.FormatError, match="empty"):
        framepool.open(p)


def test_random_bytes(tmp_path):
    p = tmp_path / "noise.mp4"
    p.write_bytes(np.random.default_rng(1).integers(0, 256, 65536, dtype=np.uint8).tobytes())
    with pytest.raises(framepool.FormatError):
        framepool.open(p)


def test_audio_only(clips):
    with pytest.raises(framepool.NoStreamError, match="no video stream"):
        framepool.open(clips.audio_only)


def test_truncated(clips, tmp_path):
    data = clips.h264.read_bytes()  # MP4 with its index (moov) at the end
    p = tmp_path / "cut.mp4"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(framepool.FormatError):
        framepool.open(p)
    # MPEG-TS has no index: a cut stream ends early, or with a DecodeError
    ts = clips.ts_long.read_bytes()
    p2 = tmp_path / "cut.ts"
    p2.write_bytes(ts[: len(ts) // 3])
    got = 0
    try:
        for _ in framepool.open(p2, format="gray8"):
            got += 1
    except framepool.DecodeError:
        pass
    assert 50 < got < 300


def test_corrupt_middle_third(clips, tmp_path):
    ts = bytearray(clips.ts_long.read_bytes())
    third = len(ts) // 3
    rng = np.random.default_rng(7)
    for i in rng.integers(third, 2 * third, len(ts) // 50):
        ts[i] ^= 0xFF
    p = tmp_path / "corrupt.ts"
    p.write_bytes(bytes(ts))
    reader = framepool.open(p, format="gray8")
    got, corrupt = 0, 0
    try:
        for frame in reader:
            got += 1
            corrupt += frame.corrupt
    except (framepool.DecodeError, framepool.FormatError, framepool.InputOutputError):
        pass
    st = reader.stats
    assert got > 0
    assert st["decode_errors"] + corrupt + st["corrupt"] > 0 or got < 300


def test_real_footage(shared_videos):
    for name, frames in (("bottle-detection.mp4", 1189), ("car-detection.mp4", 377),
                         ("milk.mkv", 51)):
        n = 0
        with framepool.open(shared_videos / name, format="bgr24", size=(160, None),
                            max_held=1) as reader:
            for frame in reader:
                n += 1
        assert n == frames, name


def test_break_close_reopen_does_not_leak(clips):
    """The loop users write first: open, read a few frames, break, close,
    again and again. Nothing framepool allocates may stay behind."""
    def once():
        with framepool.open(clips.h264, format="bgr24", max_held=2) as reader:
            for frame in reader:
                if frame.index == 10:
                    break
        del frame

    once()
    gc.collect()
    objects, live = framepool.live_bytes()
    for _ in range(30):
        once()
    gc.collect()
    assert framepool.live_bytes() == (objects, live)


def test_binding_python_memory_is_flat(clips):
    import tracemalloc

    def run():
        for frame in framepool.open(clips.h264, format="gray8", max_held=1):
            np.asarray(frame).sum()
        del frame

    run()
    tracemalloc.start()
    try:
        run()
        before = tracemalloc.take_snapshot()
        for _ in range(5):
            run()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert grown < 64 * 1024, f"{grown} bytes of Python memory kept by 250 frames"


def test_no_reference_leaks_per_frame(clips):
    filename = sys._getframe().f_code.co_filename
    name = str(clips.h264)

    def run():
        reader = framepool.open(name, format="gray8", max_held=4)
        for frame in reader:
            frame.site, frame.shape, frame.time, frame.pool, repr(frame)
            np.asarray(frame)
            frame.planes
        reader.info, reader.stats, repr(reader)
        try:
            framepool.open(name + ".missing")
        except framepool.NotFoundError:
            pass

    run()
    gc.collect()
    before = (sys.getrefcount(filename), sys.getrefcount(None), sys.getrefcount(True),
              sys.getrefcount(framepool.NotFoundError))
    for _ in range(3):
        run()
    gc.collect()
    after = (sys.getrefcount(filename), sys.getrefcount(None), sys.getrefcount(True),
             sys.getrefcount(framepool.NotFoundError))
    assert after == before
