"""Process models (issue 24): fork with readers open (the child inherits
them as abandoned and never joins the parent's threads), multiprocessing's
fork and spawn start methods, and frames that pickle."""
import pathlib
import pickle
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import framepool
from framepool import _framepool as C

from test_reader import free_port, serve_tcp

HERE = pathlib.Path(__file__).resolve().parent


def run(*args):
    p = subprocess.run([sys.executable, str(HERE / "fork_child.py"), *map(str, args)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "CHILD-READ-WORKED" not in p.stdout
    return p.stdout


def child_line(out, label):
    line = next(ln for ln in out.splitlines() if ln.startswith(label))
    words = dict(w.split("=", 1) for w in line.split()[1:])
    return words


def assert_quick_clean_exit(out, label):
    w = child_line(out, label)
    assert w["exit"] == "0", out
    assert float(w["time"]) < 2.0, out


def test_fork_with_a_threaded_file_reader(clips):
    out = run("file", clips.h264)
    assert_quick_clean_exit(out, "FILE")
    assert "PARENT frames=50" in out  # the parent's reader is untouched


@pytest.mark.parametrize("hold", ["held", "none"])
def test_fork_with_a_live_reader(hold):
    port = free_port()
    server = serve_tcp(port)
    try:
        out = run("live", f"tcp://127.0.0.1:{port}", hold)
    finally:
        server.kill()
        server.wait()
    assert_quick_clean_exit(out, "LIVE")
    assert "PARENT live-frame=320x240" in out


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing_children_exit_with_readers_open(clips, method):
    out = run("mp", method, clips.h264)
    assert_quick_clean_exit(out, f"MP-{method}")
    assert child_line(out, f"MP-{method}")["frame"] == "0:320x240x3"


# ---- pickling -----------------------------------------------------------------------------

def test_pickle_roundtrip_keeps_pixels_and_metadata(clips):
    r = framepool.open(clips.h264, format="bgr24")
    for f in r:
        if f.index == 7:
            break
    data = pickle.dumps(f)
    g = pickle.loads(data)
    assert isinstance(g, framepool.Frame)
    assert (np.asarray(g) == np.asarray(f)).all()
    for name in ("index", "time", "pts", "wall_time", "flags", "format", "width", "height",
                 "key", "corrupt"):
        assert getattr(g, name) == getattr(f, name), name
    assert g.writable and g.pool is None and g is not f


@pytest.mark.parametrize("fmt", ["yuv420p", "nv12", "yuv420p10le", "gray8", "rgba"])
def test_pickle_every_known_format(clips, fmt):
    f = framepool.open(clips.h264, format=fmt).read()
    g = pickle.loads(pickle.dumps(f, protocol=pickle.HIGHEST_PROTOCOL))
    assert g.format == f.format
    for a, b in zip(f.planes, g.planes):
        assert (np.asarray(a) == np.asarray(b)).all()


def test_unpickled_frames_are_counted_and_traced(clips):
    f = framepool.open(clips.h264, format="bgr24").read()
    data = pickle.dumps(f)
    del f
    before = C.live_bytes()
    tracemalloc.start()
    try:
        g = pickle.loads(data)  # UNPICKLE-LINE
        snap = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.DomainFilter(True, framepool.TRACEMALLOC_DOMAIN)])
    finally:
        tracemalloc.stop()
    after = C.live_bytes()
    assert after[0] >= before[0] + 1 and after[1] >= before[1] + 320 * 240 * 3
    stats = snap.statistics("lineno")
    assert stats and stats[0].size >= 320 * 240 * 3
    line = stats[0].traceback[0]
    assert line.filename == __file__
    src = pathlib.Path(__file__).read_text().splitlines()[line.lineno - 1]
    assert "UNPICKLE-LINE" in src
    g.release()


def test_pickle_crosses_a_process_boundary(clips):
    out = run("mp", "spawn", clips.h264)
    w = child_line(out, "MP-spawn")
    assert w["frame"] == "0:320x240x3"
    assert w["same"] == "1", out  # pixels and metadata equal to the parent's decode


def test_released_frame_does_not_pickle(clips):
    f = framepool.open(clips.h264, format="bgr24").read()
    f.release()
    with pytest.raises(ValueError, match="released"):
        pickle.dumps(f)
