"""The camera fleet sample (python/samples/fleet.py) on a Dask LocalCluster of
2 worker processes with 4 loopback cameras (`ffmpeg ... -f mpegts
tcp://127.0.0.1:PORT?listen=1`, restarted in a loop as a camera would come
back): every camera delivers; a camera server killed is back within 3 s; a
SIGKILLed worker's cameras deliver again within 15 s; a cancelled camera and
then stop() leave no reader open on any worker.

Run by ctest python_fleet (pytest, this file named explicitly: it is not
part of the quick suite). Needs python3-distributed and the ffmpeg command;
fails, not skips, without them."""
import logging
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import framepool

SOURCE_DIR = pathlib.Path(os.environ.get("FP_SOURCE_DIR",
                                         pathlib.Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(SOURCE_DIR / "python" / "samples"))  # workers inherit sys.path

import distributed  # noqa: E402  (python3-distributed: an ImportError fails the run)
import fleet  # noqa: E402

N_CAMERAS = 4


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CameraServer:
    """A loopback camera: ffmpeg serving one client at a time, restarted
    whenever it exits (the client left, or kill())."""

    def __init__(self):
        self.port = free_port()
        self.url = f"tcp://127.0.0.1:{self.port}"
        self.proc = None
        self.running = True
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while self.running:
            with self.lock:
                if not self.running:
                    return
                self.proc = subprocess.Popen(
                    ["ffmpeg", "-nostdin", "-v", "error", "-re", "-f", "lavfi", "-i",
                     "testsrc2=size=320x240:rate=25", "-c:v", "libx264", "-preset", "ultrafast",
                     "-tune", "zerolatency", "-g", "25", "-f", "mpegts",
                     f"{self.url}?listen=1"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.proc.wait()
            time.sleep(0.05)

    def kill(self):
        with self.lock:
            self.proc.kill()

    def stop(self):
        self.running = False
        with self.lock:
            if self.proc:
                self.proc.kill()
        self.thread.join(5)


class Collector:
    """Chunks by camera, read from the fleet's queue."""

    def __init__(self, f):
        self.fleet = f
        self.chunks = {}   # camera -> list of chunks
        self.errors = []

    def pump(self, seconds=0.2):
        for c in self.fleet.chunks(timeout=seconds):
            self.chunks.setdefault(c["camera"], []).append(c)
            if c["error"]:
                self.errors.append(f"{c['camera']}: {c['error']}")

    def wait(self, what, predicate, timeout):
        """Pumps until predicate() is true; fails naming `what` and the state."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump()
            if predicate():
                return
        pytest.fail(f"{what}: not within {timeout} s\n{self.describe()}")

    def frames_after(self, camera, t, not_pid=None):
        """Frames of `camera` that arrived (wall_time) after t."""
        return [fr for c in self.chunks.get(camera, []) if c["pid"] != not_pid
                for fr in c["frames"] if fr["wall_time"] > t]

    def describe(self):
        lines = []
        for cam in sorted(self.chunks):
            cs = self.chunks[cam]
            last = cs[-1]
            lines.append(f"  {cam}: {sum(len(c['frames']) for c in cs)} frames in {len(cs)} "
                         f"chunks, last from pid {last['pid']} run {last['run']} at "
                         f"{last['sent']:.2f}, connected={last['connected']} "
                         f"reconnects={last['reconnects']}")
        lines += [f"  error {e}" for e in self.errors]
        lines.append(f"  futures: { {k: f.status for k, f in self.fleet.futures.items()} }")
        return "\n".join(lines) or "  no chunk at all"


@pytest.fixture(scope="module")
def cameras():
    if not subprocess.run(["which", "ffmpeg"], capture_output=True).returncode == 0:
        pytest.fail("the ffmpeg command is needed (Debian: ffmpeg)")
    cams = [CameraServer() for _ in range(N_CAMERAS)]
    yield cams
    for c in cams:
        c.stop()


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True,
                                       memory_limit="1GiB", dashboard_address=None,
                                       silence_logs=logging.CRITICAL)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def test_worker_budget_outside_a_worker():
    """Outside a Dask worker the budget is the fraction of the machine's
    memory, made once and set as the process's default budget."""
    old = framepool.set_default_budget(None)
    fleet._budget = None
    try:
        b = fleet.worker_budget(0.25)
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        assert b.max_bytes == int(total * 0.25) and fleet.worker_budget(0.5) is b
        assert framepool.get_default_budget() is b
        assert fleet.budget_stats() == b.stats
    finally:
        fleet._budget = None
        framepool.set_default_budget(old)


@pytest.fixture
def client_budget():
    """The thumbnails unpickled in this process are charged to a budget."""
    b = framepool.Budget(64 * 2**20, name="fleet client")
    old = framepool.set_default_budget(b)
    yield b
    framepool.set_default_budget(old)


def test_fleet_delivers_recovers_and_stops(cameras, client, client_budget):
    f = fleet.Fleet(client, [c.url for c in cameras], size=(160, 120), chunk=0.25, thumb=1.0,
                    poll=0.25)
    col = Collector(f)
    f.start()
    try:
        # every camera delivers, thumbnails included
        col.wait("every camera delivers 20 frames",
                 lambda: all(len(col.frames_after(s["camera"], 0)) >= 20 for s in f.specs), 60)
        assert not col.errors, col.describe()
        # each worker's frame budget is half its 1 GiB memory limit, and its
        # cameras' readers (two pools each) and thumbnails are charged to it
        for s in f.specs:
            last = col.chunks[s["camera"]][-1]
            assert last["budget"] == 2**30 // 2, last["budget"]
            assert 0 < last["budget_used"] <= last["budget"], last
            assert last["budget_pools"] >= 2 and last["budget_drops"] == 0, last
            assert last["thumb_limits"] == 0, last
            print(f"{s['camera']}: the worker's {last['budget'] / 2**20:.0f} MiB frame budget "
                  f"holds {last['budget_used'] / 2**20:.2f} MiB in {last['budget_pools']} pools")
        budgets = f.budgets()
        assert len(budgets) == 2 and all(b is not None for b in budgets.values()), budgets
        for addr, b in budgets.items():
            assert b is not None and b["max_bytes"] == 2**30 // 2, (addr, b)
            assert 0 < b["used_bytes"] <= b["peak_bytes"] <= b["max_bytes"], (addr, b)
            assert b["pools"] >= 2, (addr, b)
        for s in f.specs:
            col.wait(f"{s['camera']} sends a thumbnail", lambda: any(
                c["thumbnail"] is not None for c in col.chunks[s["camera"]]), 10)
            thumbs = [c["thumbnail"] for c in col.chunks[s["camera"]]
                      if c["thumbnail"] is not None]
            t = thumbs[0]
            assert isinstance(t, framepool.Frame), type(t)  # unpickled: an ordinary frame
            assert np.asarray(t).shape == (120, 160), np.asarray(t).shape
            # charged to this process's default budget (set by the fixture)
            assert t.pool == f"copies 160x120 {t.format}", t.pool
            assert client_budget.stats["used_bytes"] >= 160 * 120, client_budget.stats

        # a camera server killed: its camera is back within 3 s
        cam = f.specs[0]["camera"]
        before = col.chunks[cam][-1]["reconnects"]
        t_kill = time.time()
        cameras[0].kill()
        col.wait(f"{cam} delivers again after its server was killed",
                 lambda: any(c["reconnects"] > before for c in col.chunks[cam])
                 and col.frames_after(cam, t_kill + 0.04), 10)
        back = min(fr["wall_time"] for fr in col.frames_after(cam, t_kill + 0.04)) - t_kill
        print(f"camera server killed: {cam} back after {back:.2f} s")
        assert back < 3.0, f"{cam} back after {back:.2f} s\n{col.describe()}"

        # a worker SIGKILLed: its cameras deliver again (restarted by the
        # scheduler, on any worker) within 15 s
        pids = client.run(os.getpid)
        victim = col.chunks[f.specs[1]["camera"]][-1]["pid"]
        assert victim in pids.values(), (victim, pids)
        moved = [s["camera"] for s in f.specs if col.chunks[s["camera"]][-1]["pid"] == victim]
        t_kill = time.time()
        os.kill(victim, signal.SIGKILL)
        col.wait(f"{moved} deliver again after their worker (pid {victim}) was killed",
                 lambda: all(col.frames_after(cam, t_kill, not_pid=victim) for cam in moved),
                 30)
        backs = {cam: min(fr["wall_time"] for fr in col.frames_after(cam, t_kill, victim))
                 - t_kill for cam in moved}
        print("worker SIGKILLed: " + ", ".join(f"{k} back after {v:.2f} s"
                                              for k, v in backs.items()))
        assert max(backs.values()) < 15.0, f"{backs}\n{col.describe()}"
        # the others never stopped
        col.wait("every camera delivers after the worker's death", lambda: all(
            col.frames_after(s["camera"], t_kill + max(backs.values())) for s in f.specs), 15)

        # a cancelled camera closes its reader (the task sees its own state)
        col.wait("4 readers open", lambda: sum(f.open_readers().values()) == N_CAMERAS, 20)
        client.cancel([f.futures[f.specs[3]["camera"]]])
        col.wait("the cancelled camera's reader closed",
                 lambda: sum(f.open_readers().values()) == N_CAMERAS - 1, 10)
    finally:
        totals = f.stop(timeout=20)
    left = f.open_readers()
    print("totals:", totals, "readers left:", left)
    assert not any(left.values()), f"readers left open after stop(): {left}"
    assert len(totals) >= N_CAMERAS - 1, totals
