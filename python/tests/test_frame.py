"""Frames: zero-copy buffer protocol, lifetime, weak references, GC, sizes."""
import ctypes
import gc
import sys
import weakref

import cv2
import numpy as np
import pytest

import framepool


def first_frame(path, **kw):
    reader = framepool.open(path, **kw)
    frame = reader.read()
    assert frame is not None
    return reader, frame


def test_bgr_shape_strides_and_values(clips):
    reader, frame = first_frame(clips.h264, format="bgr24")
    a = np.asarray(frame)
    assert a.shape == (240, 320, 3) and a.dtype == np.uint8
    assert a.strides[1:] == (3, 1) and a.strides[0] % 64 == 0 and a.strides[0] >= 960
    assert frame.shape == (240, 320, 3) and (frame.width, frame.height) == (320, 240)
    # the same pixels OpenCV decodes (both BT.601 bilinear; allow rounding)
    cap = cv2.VideoCapture(str(clips.h264))
    ok, ref = cap.read()
    assert ok
    assert np.abs(a.astype(int) - ref.astype(int)).mean() < 3.0
    assert bytes(frame.tobytes()) == a.tobytes()


@pytest.mark.parametrize("fmt,name,shape", [("gray8", "gray", (240, 320)),
                                            ("rgb24", "rgb24", (240, 320, 3)),
                                            ("bgra", "bgra", (240, 320, 4)),
                                            ("rgba", "rgba", (240, 320, 4))])
def test_packed_formats(clips, fmt, name, shape):
    reader, frame = first_frame(clips.h264, format=fmt)
    assert frame.format == name
    assert np.asarray(frame).shape == shape


def test_zero_copy_views_share_memory(clips):
    reader, frame = first_frame(clips.h264, format="bgr24")
    a = np.asarray(frame)
    b = np.asarray(frame)
    assert np.shares_memory(a, b)
    m = memoryview(frame)
    assert m.obj is frame and m.shape == (240, 320, 3) and m.format == "B"
    assert np.shares_memory(a, np.asarray(m))
    # the array's base chain ends at the frame: numpy did not copy
    assert a.base is not None and a.base.obj is frame


def test_writes_through_a_writable_frame_are_seen_by_c(clips, tmp_path):
    reader, frame = first_frame(clips.h264, format="bgr24")
    assert frame.writable
    a = np.asarray(frame)
    assert a.flags.writeable
    a[10:20, 30:40] = (1, 2, 3)
    # C reads the pixels: fp_image_save writes them, tobytes copies them
    out = tmp_path / "w.png"
    frame.save(out)
    saved = cv2.imread(str(out))
    assert (saved[10:20, 30:40] == (1, 2, 3)).all()
    raw = np.frombuffer(frame.tobytes(), np.uint8).reshape(240, 320, 3)
    assert (raw[15, 35] == (1, 2, 3)).all()


def test_native_planes_and_readonly(clips):
    reader, frame = first_frame(clips.h264, threads=1)
    assert frame.format == "yuv420p"
    with pytest.raises(BufferError, match="frame.plane"):
        np.asarray(frame)
    y, u, v = (np.asarray(p) for p in frame.planes)
    assert y.shape == (240, 320) and u.shape == (120, 160) and v.shape == (120, 160)
    # a frame the decoder still references is read-only; a copy is writable
    assert y.flags.writeable == frame.writable
    assert not frame.writable  # the decoder keeps the key frame as a reference
    with pytest.raises(TypeError, match="not writable"):
        ctypes.c_char.from_buffer(frame.plane(0))
    assert memoryview(frame.plane(0)).readonly
    c = frame.copy()
    assert c.writable and c.pool is None
    assert (np.asarray(c.plane(0)) == y).all()
    assert not np.shares_memory(np.asarray(c.plane(0)), y)


def test_nv12_uv_plane(clips):
    reader, frame = first_frame(clips.h264, format="nv12")
    assert np.asarray(frame.plane(1)).shape == (120, 160, 2)
    with pytest.raises(IndexError):
        frame.plane(2)


def test_view_keeps_frame_alive_and_frees_it_when_it_goes(clips):
    reader = framepool.open(clips.h264, format="bgr24")
    frame = reader.read()
    a = np.asarray(frame)
    ref = weakref.ref(frame)
    del frame
    gc.collect()
    assert ref() is not None and reader.held == 1
    assert a[0, 0].sum() >= 0  # still readable
    del a
    gc.collect()
    assert ref() is None
    assert reader.held == 0 and reader.stats["out_pool"]["outstanding"] == 0


def test_release_with_live_view_raises_then_works(clips):
    reader, frame = first_frame(clips.h264, format="bgr24")
    a = np.asarray(frame)
    with pytest.raises(BufferError, match="exported"):
        frame.release()
    assert not frame.released
    del a
    frame.release()
    assert frame.released and reader.held == 0
    with pytest.raises(ValueError, match="released"):
        frame.width
    with pytest.raises(BufferError):
        np.asarray(frame)
    frame.release()  # twice is harmless


def test_with_frame_releases(clips):
    reader = framepool.open(clips.h264, format="bgr24")
    with reader.read() as frame:
        assert reader.held == 1
    assert frame.released and reader.held == 0


def test_weakref_dies_when_the_loop_rebinds(clips):
    reader = framepool.open(clips.h264, format="bgr24")
    refs = []
    for frame in reader:
        refs.append(weakref.ref(frame))
        if len(refs) == 5:
            break
    assert [r() is None for r in refs] == [True] * 4 + [False]
    del frame
    assert refs[-1]() is None
    # a weak registry stays small
    registry = weakref.WeakValueDictionary()
    for frame in reader:
        registry[frame.index] = frame
    assert len(registry) == 1


def test_gc_tracked_and_sizeof_counts_pixels(clips):
    reader, frame = first_frame(clips.h264, format="bgr24")
    assert gc.is_tracked(frame)
    assert any(o is frame for o in gc.get_objects())
    assert sys.getsizeof(frame) >= 240 * 320 * 3
    assert sys.getsizeof(frame) >= frame.nbytes
    frame.release()
    assert sys.getsizeof(frame) < 1024


def test_repr_and_metadata(clips):
    reader = framepool.open(clips.h264, format="bgr24")
    line = sys._getframe().f_lineno + 1
    frames = [reader.read() for _ in range(3)]
    r = repr(frames[1])
    assert "320x240" in r and "bgr24" in r and "pool='" in r and "bytes" in r
    assert [f.index for f in frames] == [0, 1, 2]
    assert frames[1].time == pytest.approx(0.04, abs=1e-3)
    assert frames[0].key and frames[0].flags & framepool.FLAG_KEY
    assert frames[1].pts > frames[0].pts
    assert frames[0].site.endswith(f"test_frame.py:{line}")


def test_frames_outlive_their_reader(clips):
    reader = framepool.open(clips.h264, format="bgr24")
    keep = reader.read()
    before = np.asarray(keep).copy()
    reader.close()
    assert reader.closed
    del reader
    gc.collect()
    assert (np.asarray(keep) == before).all()


def test_copy_is_not_held_and_make_writable_copies_native(clips):
    reader = framepool.open(clips.h264, max_held=1, threads=1)
    frame = reader.read()
    assert not frame.writable
    y = np.asarray(frame.plane(0)).copy()
    frame.make_writable()  # copies from the decoder pool: now ours alone
    assert frame.writable and (np.asarray(frame.plane(0)) == y).all()
    np.asarray(frame.plane(0))[0, 0] = 255 - y[0, 0]
    keep = frame.copy()
    del frame
    for _ in range(3):  # the copy does not count against max_held=1
        reader.read()
    assert keep.writable and keep.index == 0


def test_save_errors_are_framepool_errors(clips, tmp_path):
    reader, frame = first_frame(clips.h264, format="bgr24")
    with pytest.raises(framepool.FormatError, match="xyz"):
        frame.save(tmp_path / "f.xyz")
    with pytest.raises(framepool.InputOutputError, match="no-such-dir"):
        frame.save(tmp_path / "no-such-dir" / "f.png")
    frame.save(tmp_path / "f.jpg")
    assert cv2.imread(str(tmp_path / "f.jpg")).shape == (240, 320, 3)
