"""Views are holders (issue 24): the Python line that took a buffer export
(np.asarray, memoryview, frame.planes) is recorded; LimitError and
leak_report() name it and say that views pin frames; tracemalloc attributes
the kept frame's pixels to it."""
import collections
import pathlib
import tracemalloc

import numpy as np
import pytest

import framepool

SRC = pathlib.Path(__file__).read_text().splitlines()


def line_of(marker):
    return next(i + 1 for i, text in enumerate(SRC) if text.rstrip().endswith("# " + marker))


def test_limit_error_names_the_np_asarray_line(clips):
    r = framepool.open(clips.h264, format="gray8", max_held=3)
    kept = []
    with pytest.raises(framepool.LimitError) as e:
        for frame in r:  # RECEIVE
            kept.append(np.asarray(frame))  # ASARRAY
    msg = str(e.value)
    assert f"{__file__}:{line_of('RECEIVE')}: 3 frames" in msg
    assert f"held by a view taken at {__file__}:{line_of('ASARRAY')} (3 views)" in msg
    assert "Views pin frames" in msg


def test_a_deque_of_memoryviews_and_planes_are_named(clips):
    r = framepool.open(clips.h264, max_held=4)  # native yuv420p: planes
    recent = collections.deque(maxlen=30)
    with pytest.raises(framepool.LimitError) as e:
        for frame in r:  # RECEIVE-NATIVE
            recent.append(frame.planes)  # PLANES
    msg = str(e.value)
    assert f"held by a view taken at {__file__}:{line_of('PLANES')}" in msg
    r = framepool.open(clips.h264, format="bgr24", max_held=2)
    views = []
    with pytest.raises(framepool.LimitError) as e:
        for frame in r:
            views.append(memoryview(frame))  # MEMORYVIEW
    assert f"held by a view taken at {__file__}:{line_of('MEMORYVIEW')}" in str(e.value)


def test_views_property_and_leak_report(clips):
    r = framepool.open(clips.h264, format="bgr24")
    frame = r.read()
    assert frame.views == []
    img = np.asarray(frame)  # VIEW-FOR-REPORT
    assert frame.views == [f"{__file__}:{line_of('VIEW-FOR-REPORT')}"]
    del frame
    report = framepool.leak_report()
    assert f"held by a view taken at {__file__}:{line_of('VIEW-FOR-REPORT')}" in report
    assert "views pin frames" in report
    del img
    assert f"{__file__}:{line_of('VIEW-FOR-REPORT')}" not in framepool.leak_report()


def test_tracemalloc_attributes_kept_frames_to_the_view_line(clips):
    tracemalloc.start()
    try:
        r = framepool.open(clips.h264, format="bgr24", max_held=8)
        arrays = []
        for frame in r:  # RECEIVE-TRACED
            arrays.append(np.asarray(frame))  # VIEW-TRACED
            if len(arrays) == 5:
                break
        del frame
        snap = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.DomainFilter(True, framepool.TRACEMALLOC_DOMAIN)])
    finally:
        tracemalloc.stop()
    top = snap.statistics("lineno")[0]
    assert top.traceback[0].lineno == line_of("VIEW-TRACED")
    assert top.count == 5
