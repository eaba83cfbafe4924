"""Threads stress of the binding (issue 23): 8 threads saving, releasing,
reading info and stats, taking numpy views and planes, pickling, reading,
interrupting, closing and reopening readers, all on shared readers and
frames, for FP_STRESS_SECONDS (default 3; the ASan build's long run uses
60). Only the documented refusals may happen: RuntimeError (a reader in use
by another thread), ValueError (closed reader, released frame), BufferError
(release with views), framepool.Error (LimitError, CancelledError)."""
import os
import pickle
import random
import threading
import time

import numpy as np

import framepool
from framepool import _framepool as C

SECONDS = float(os.environ.get("FP_STRESS_SECONDS", "3"))
EXPECTED = (RuntimeError, ValueError, BufferError, framepool.Error)


def test_eight_threads_share_readers_and_frames(clips, tmp_path):
    clip = str(clips.h264)
    lock = threading.Lock()
    readers = [framepool.open(clip, format="bgr24", loop=-1, max_held=64) for _ in range(3)]
    frames = []
    counts = {}
    unexpected = []
    stop = time.monotonic() + SECONDS

    def pick(seq):
        with lock:
            return random.choice(seq) if seq else None

    def op_read():
        f = pick(readers).read()
        with lock:
            frames.append(f)
            if len(frames) > 24:
                frames.pop(0)

    def op_save(i):
        f = pick(frames)
        if f is not None:
            f.save(tmp_path / f"t{i}.png")

    def op_release():
        f = pick(frames)
        if f is not None:
            f.release()

    def op_info():
        r = pick(readers)
        r.info
        r.stats
        repr(r)

    def op_view():
        f = pick(frames)
        if f is not None:
            a = np.asarray(f)
            int(a[::37, ::41].sum())
            m = memoryview(f)
            del a, m
            f.views

    def op_planes():
        f = pick(frames)
        if f is not None and not f.released:
            p = f.planes
            np.asarray(p[0])
            del p

    def op_pickle():
        f = pick(frames)
        if f is not None:
            g = pickle.loads(pickle.dumps(f))
            with lock:
                frames.append(g)

    def op_reopen():
        new = framepool.open(clip, format=random.choice(["bgr24", "gray8", None]), loop=-1,
                             max_held=64, threads=random.choice([1, 2]))
        with lock:
            k = random.randrange(len(readers))
            old, readers[k] = readers[k], new
        old.close()

    def op_interrupt():
        if random.random() < 0.1:
            C.interrupt_all()
        else:
            pick(readers).interrupt()

    ops = [op_read, op_read, op_read, op_save, op_release, op_release, op_info, op_view,
           op_planes, op_pickle, op_reopen, op_interrupt]

    def work(i):
        rnd = random.Random(i)
        while time.monotonic() < stop:
            op = rnd.choice(ops)
            try:
                op(i) if op is op_save else op()
                name = op.__name__
            except EXPECTED as e:
                name = op.__name__ + ":" + type(e).__name__
            except Exception as e:  # reported below
                unexpected.append(repr(e))
                return
            with lock:
                counts[name] = counts.get(name, 0) + 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(SECONDS + 120)
    assert not any(t.is_alive() for t in threads)
    for r in readers:
        r.close()
    frames.clear()
    print("stress", SECONDS, "s:", sorted(counts.items()))
    assert not unexpected, unexpected
    assert counts.get("op_read", 0) > 0 and counts.get("op_save", 0) > 0
