"""Python's own memory tools see framepool frames: tracemalloc, objgraph,
sys.getsizeof; and the C diagnostics as text."""
import gc
import io
import re
import tracemalloc

import objgraph
import pytest

import framepool


def line_of(marker):
    with open(__file__) as f:
        for n, text in enumerate(f, 1):
            if text.rstrip().endswith("# " + marker):
                return n
    raise LookupError(marker)


def framepool_stats(snapshot):
    dom = tracemalloc.DomainFilter(True, framepool.TRACEMALLOC_DOMAIN)
    return snapshot.filter_traces([dom])


def keep_five(reader, keep):
    for i, frame in enumerate(reader):  # keeper
        keep.append(frame)
        if i == 4:
            break


def test_tracemalloc_names_the_line_that_keeps_frames(clips):
    tracemalloc.start()
    try:
        reader = framepool.open(clips.h264, format="bgr24", max_held=32)
        keep = []
        keep_five(reader, keep)
        first = tracemalloc.take_snapshot()
        keep_five(reader, keep)
        second = tracemalloc.take_snapshot()
        nbytes = keep[0].nbytes

        stats = framepool_stats(second).statistics("lineno")
        assert len(stats) == 1
        top = stats[0]
        assert top.traceback[0].filename == __file__
        assert top.traceback[0].lineno == line_of("keeper")
        assert top.count == 10 and top.size == 10 * nbytes
        # the unfiltered statistics show the frames too, as the biggest line
        everything = second.statistics("lineno")
        assert everything[0].traceback[0].lineno == line_of("keeper")

        diff = framepool_stats(second).compare_to(framepool_stats(first), "lineno")
        assert diff[0].count_diff == 5 and diff[0].size_diff == 5 * nbytes

        # released frames leave tracemalloc
        for f in keep[:6]:
            f.release()
        del keep
        gc.collect()
        assert framepool_stats(tracemalloc.take_snapshot()).statistics("lineno") == []
    finally:
        tracemalloc.stop()


def test_tracemalloc_untracks_frames_freed_by_the_loop(clips):
    tracemalloc.start()
    try:
        for frame in framepool.open(clips.h264, format="gray8"):
            pass
        snap = framepool_stats(tracemalloc.take_snapshot())
        st = snap.statistics("lineno")
        assert len(st) == 1 and st[0].count == 1  # only the loop variable's frame
        del frame
        assert framepool_stats(tracemalloc.take_snapshot()).statistics("lineno") == []
    finally:
        tracemalloc.stop()


def test_objgraph_show_growth_sees_frames_in_a_list(clips):
    reader = framepool.open(clips.h264, format="gray8", max_held=16)
    objgraph.growth()  # baseline
    kept = []
    for frame in reader:
        kept.append(frame)
        if len(kept) == 7:
            break
    del frame
    grew = dict((name, delta) for name, count, delta in objgraph.growth(limit=50))
    assert grew.get("Frame") == 7
    out = io.StringIO()
    objgraph.show_growth(file=out)  # nothing new since
    assert "Frame" not in out.getvalue()
    assert objgraph.count("Frame") >= 7


def test_summary_growth_and_leak_report(clips):
    framepool.diag_configure("sites")
    try:
        framepool.growth(limit=0)  # baseline
        reader = framepool.open(clips.h264, format="bgr24", max_held=16)
        kept = [reader.read() for _ in range(6)]  # leaky line
        s = framepool.summary()
        assert "fp_image" in s and "live size" in s
        g = framepool.growth()
        assert "fp_image" in g
        assert framepool.growth() == ""  # a steady state prints nothing
        report = framepool.leak_report()
        assert f"test_diag.py:{line_of('leaky line')}" in report
        n, live = framepool.live_bytes()
        assert live >= 6 * kept[0].nbytes
        del kept
    finally:
        framepool.diag_configure("off")


def test_memtrack_verdict_through_the_binding(clips):
    t = framepool.MemTrack(min_warmup=20)
    for frame in framepool.open(clips.ts_long, format="bgr24"):
        t.sample()
    r = t.result()
    assert r["frames"] == 300 and r["verdict"] in ("PASS", "INCONCLUSIVE", "FAIL")
    assert r["live_flat"]
    assert "memory per frame:" in t.report()


def test_leak_hunt_sample_names_the_line(clips):
    import pathlib
    import subprocess
    import sys

    sample = pathlib.Path(__file__).resolve().parents[1] / "samples" / "leak_hunt.py"
    p = subprocess.run([sys.executable, str(sample), str(clips.ts_long)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    loop_line = next(n for n, t in enumerate(sample.read_text().splitlines(), 1)
                     if "for frame in reader:" in t and "bound" not in t)
    first = p.stdout.splitlines()[1]
    assert f"leak_hunt.py:{loop_line}: size=" in first and "count=13 (+7)" in first
    assert re.search(r"Frame\s+13\s+\+13", p.stdout)
    assert f"leak_hunt.py:{loop_line}: 13 frames" in p.stdout
