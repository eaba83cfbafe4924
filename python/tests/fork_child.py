"""Run by test_process.py in its own process: forks (os.fork or
multiprocessing) while framepool readers are open and prints, for each
child, how it ended and how long it took. A child that hangs is killed
after 5 s and reported as HUNG.

    fork_child.py file CLIP            a file reader with threads=2, mid-stream
    fork_child.py live URL held|none   a live reader (a frame held or not)
    fork_child.py mp fork|spawn CLIP   multiprocessing children, readers open
"""
import multiprocessing
import os
import pickle
import sys
import time

import numpy as np

import framepool


def wait_child(pid, limit=5.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), time.monotonic() - t0
        time.sleep(0.005)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return "HUNG", time.monotonic() - t0


def in_child(reader, held, clip):
    """What a child may do with what it inherited, then a normal exit (the
    interpreter's finalization deallocates the inherited readers)."""
    try:
        reader.read()
        print("CHILD-READ-WORKED", flush=True)  # must not happen
    except framepool.Error as e:
        assert "inherited through fork" in str(e), e
    assert reader.closed and framepool._framepool.readers() == []
    if held is not None:
        int(np.asarray(held).sum())  # the parent's pixels stay readable
        held.release()
    if clip:
        with framepool.open(clip, format="gray8", threads=2) as r2:  # framepool works
            assert sum(1 for _ in r2) > 0
    sys.exit(0)


def fork_and_report(reader, held, clip, label):
    pid = os.fork()
    if pid == 0:
        in_child(reader, held, clip)
    code, took = wait_child(pid)
    print(f"{label} exit={code} time={took:.3f}", flush=True)


def mode_file(clip):
    r = framepool.open(clip, format="bgr24", threads=2, max_held=4)
    frames = [r.read() for _ in range(3)]
    fork_and_report(r, frames[0], clip, "FILE")
    # the parent goes on
    n = 3 + sum(1 for _ in r)
    print(f"PARENT frames={n}", flush=True)


def mode_live(url, hold):
    r = framepool.open(url, format="gray8", live="latest", timeout=20, threads=2)
    f = r.read()
    held = f if hold == "held" else None
    if held is None:
        f.release()
    fork_and_report(r, held, None, "LIVE")
    g = r.read()
    print(f"PARENT live-frame={g.width}x{g.height}", flush=True)


def mp_child(clip, q):
    with framepool.open(clip, format="bgr24") as r:
        f = r.read()
        q.put(pickle.dumps(f))


def mode_mp(method, clip):
    r = framepool.open(clip, format="bgr24", threads=2)
    mine = r.read()
    live = framepool.open("tcp://127.0.0.1:1", live="latest")  # reconnecting meanwhile
    ctx = multiprocessing.get_context(method)
    q = ctx.Queue()
    p = ctx.Process(target=mp_child, args=(str(clip), q))
    p.start()
    got = pickle.loads(q.get(timeout=60))
    t0 = time.monotonic()  # the child's work is done: from here on it only exits
    p.join(10)
    took = time.monotonic() - t0
    if p.exitcode is None:
        p.kill()
        p.join()
        code = "HUNG"
    else:
        code = p.exitcode
    same = int((np.asarray(got) == np.asarray(mine)).all() and all(
        getattr(got, k) == getattr(mine, k)
        for k in ("index", "time", "pts", "flags", "format")))  # wall_time: its own decode
    print(f"MP-{method} exit={code} time={took:.3f} "
          f"frame={got.index}:{got.width}x{got.height}x{got.shape[2]} same={same}", flush=True)
    live.close()


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "file":
        mode_file(sys.argv[2])
    elif mode == "live":
        mode_live(sys.argv[2], sys.argv[3])
    elif mode == "mp":
        mode_mp(sys.argv[2], sys.argv[3])
