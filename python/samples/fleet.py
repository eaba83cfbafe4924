#!/usr/bin/python3
"""A camera fleet on Dask: N camera URLs sharded over a Dask cluster's
workers, one long-running task per camera, per-frame statistics (and now
and then a thumbnail) streamed back to the client in chunks.

    fleet.py URL [URL ...] [--scheduler tcp://HOST:8786] [--duration S]
                           [--workers 2] [--memory-limit 1GiB] [--size 320x180]
                           [--chunk S] [--thumb S] [--poll S] [--budget-fraction F]

Without --scheduler a LocalCluster of --workers processes runs on this
machine; with it the same code runs on a real cluster (docs/SCALING.md:
dask-scheduler / dask-worker; every worker needs framepool installed with
pip, and this file is sent to the workers with Client.upload_file).

How it works (each point is a function or class below):
- camera_task: opens a live framepool reader (LATEST, reconnecting with
  backoff), leaves the worker's thread pool (distributed.secede: a camera
  is not a short task), and loops: per frame (index, time, arrival wall
  time, age, mean brightness, motion against the previous frame); every
  --chunk seconds it puts a chunk on a distributed.Queue. A chunk carries
  the camera, worker, pid, run number, the frames' statistics, the
  reader's counters, and every --thumb seconds a thumbnail: a framepool
  Frame (frame.copy(), pickled: one copy of the pixels; the unpickled frame
  is an ordinary framepool frame in the client). The scheduler keeps queue
  items as msgpack data, so a chunk travels as pickle bytes.
- worker_budget: one framepool.Budget per worker process, a fraction
  (--budget-fraction, 0.5) of the Dask worker's memory limit
  (distributed.get_worker().memory_manager.memory_limit; the machine's
  memory when the worker has no limit). Every camera's reader draws its
  pools from it (framepool.open(budget=...)), and it is the process's
  default budget (framepool.set_default_budget), so the thumbnails
  (frame.copy()) are charged to it too and give their bytes back when they
  are freed. A full budget first frees idle buffers of every pool on it;
  then a live reader drops the frame (stats["budget_drops"]) and a
  thumbnail raises LimitError (counted in the chunk, never fatal): the
  worker's frame memory has a hard cap below its limit, so the nanny never
  has to kill it. The client charges the thumbnails it unpickles to a
  budget of its own the same way (--client-budget).
- Stopping: Fleet.stop() sets a distributed.Event; each camera sees it
  within --poll seconds (reads time out every --poll seconds, so a dead
  camera does not block it), closes its reader and returns. A camera whose
  future was cancelled (Client.cancel, or the client went away) sees that
  too, from the worker's task state. open_readers() counts the readers
  still open in each worker process (framepool.readers()): 0 after stop().
- Failures: a worker that dies is restarted by its nanny and the scheduler
  runs its cameras again (on any worker: the placement is a preference);
  a camera that drops is reconnected by its reader.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pickle
import sys
import threading
import time
import uuid
from typing import Any, Iterator, TypedDict

import numpy as np

import framepool

try:  # distributed is needed for the fleet, not for importing this module
    import distributed
except ImportError:  # pragma: no cover - reported by main()
    distributed = None


class CameraSpec(TypedDict):
    camera: str          # a name, unique in the fleet
    url: str
    size: tuple[int, int]
    chunk: float         # seconds between chunks
    thumb: float         # seconds between thumbnails (0: none)
    poll: float          # seconds between checks for stop/cancel
    queue: str           # distributed.Queue name of the results
    stop: str            # distributed.Event name of the fleet's stop


class FrameStat(TypedDict):
    index: int
    time: float | None
    wall_time: float     # arrival (time.time() clock)
    age: float           # seconds from arrival to this statistic
    mean: float          # mean of the pixels (0..255)
    motion: float        # mean absolute difference to the previous frame


class Chunk(TypedDict):
    camera: str
    worker: str
    pid: int
    run: int             # 1 for the first run of the camera in this process, ...
    sent: float          # time.time() when put on the queue
    frames: list[FrameStat]
    thumbnail: framepool.Frame | None  # a standalone copy, pickled on the way
    connected: bool
    reconnects: int
    dropped: int
    final: bool          # the camera stopped (stop(), cancel)
    error: str | None
    budget: int          # the worker's frame budget (bytes)
    budget_used: int     # bytes its pools and thumbnails hold now
    budget_pools: int    # pools on it (two per open reader, one per thumbnail size)
    thumb_limits: int    # thumbnails this camera skipped: the budget was full
    budget_drops: int    # frames this camera's reader lost: the budget was full

LIVE = framepool.LiveOptions(mode="latest", reconnect_min=0.1, reconnect_max=1.0, stall=3.0)

# ---- in each worker process -----------------------------------------------------------------


_budget: framepool.Budget | None = None
_budget_lock = threading.Lock()


def worker_budget(fraction: float) -> framepool.Budget:
    """This process's frame budget: `fraction` of the Dask worker's memory
    limit (of the machine's memory outside a worker, or for a worker without
    a limit), made on first use and set as the process's default budget so
    that frame.copy() and unpickled frames are charged to it as well."""
    global _budget
    with _budget_lock:
        if _budget is None:
            limit, name = 0, f"pid {os.getpid()}"
            if distributed is not None:
                try:
                    w = distributed.get_worker()
                    limit = w.memory_manager.memory_limit or 0
                    name = f"worker {w.address}"
                except ValueError:  # not in a worker
                    limit = 0
            if not limit:
                limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
            _budget = framepool.Budget(max(1, int(limit * fraction)), name=name)
            framepool.set_default_budget(_budget)
        return _budget


def budget_stats() -> framepool.BudgetStats | None:
    """The frame budget of this worker process (run on every worker by
    Fleet.budgets): None before its first camera."""
    return _budget.stats if _budget is not None else None


_runs: dict[str, int] = {}


def open_readers() -> int:
    """Readers open in this process (run on every worker by Fleet.open_readers)."""
    return len(framepool.readers())


def _cancelled(key: str | None) -> bool:
    """The scheduler no longer wants this task (cancelled, client gone)."""
    if key is None or distributed is None:
        return False
    try:
        ts = distributed.get_worker().state.tasks.get(key)
    except ValueError:
        return False
    return ts is None or ts.state not in ("executing", "long-running")


def camera_task(spec: CameraSpec, budget_fraction: float = 0.5) -> dict[str, Any]:
    """Runs one camera until the fleet stops or the task is cancelled;
    returns its totals. Runs on a Dask worker (or anywhere, without Dask)."""
    key: str | None = None
    queue: Any = None
    stop: Any = None
    worker_name = "local"
    if distributed is not None:
        try:
            w = distributed.get_worker()
            key = w.get_current_task()
            worker_name = w.address
            distributed.secede()  # long-running: free the worker's thread
            queue = distributed.Queue(spec["queue"])
            stop = distributed.Event(spec["stop"])
        except ValueError:
            pass
    camera = spec["camera"]
    _runs[camera] = run = _runs.get(camera, 0) + 1
    budget = worker_budget(budget_fraction)
    frames: list[FrameStat] = []
    totals: dict[str, Any] = {"camera": camera, "frames": 0, "chunks": 0, "worker": worker_name,
              "pid": os.getpid(), "run": run}
    error: str | None = None
    reader = framepool.open(spec["url"], format="gray8", size=spec["size"], live=LIVE,
                            max_held=2, timeout=spec["poll"], budget=budget)
    prev: np.ndarray[Any, Any] | None = None
    next_chunk = time.monotonic() + spec["chunk"]
    next_thumb = time.monotonic()
    next_poll = time.monotonic() + spec["poll"]
    thumb: framepool.Frame | None = None
    thumb_limits = 0

    def send(final: bool) -> None:
        connected, reconnects, dropped, budget_drops = False, 0, 0, 0
        if not reader.closed:
            s = reader.stats
            connected, reconnects, dropped = s["connected"], s["reconnects"], s["dropped"]
            budget_drops = s["budget_drops"]
        b = budget.stats
        chunk = Chunk(camera=camera, worker=worker_name, pid=os.getpid(), run=run,
                      sent=time.time(), frames=list(frames), thumbnail=thumb,
                      connected=connected, reconnects=reconnects, dropped=dropped,
                      final=final, error=error, budget=b["max_bytes"],
                      budget_used=b["used_bytes"], budget_pools=b["pools"],
                      thumb_limits=thumb_limits, budget_drops=budget_drops)
        if queue is not None:  # the scheduler keeps msgpack data: send pickled bytes
            queue.put(pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL))
        totals["chunks"] += 1
        frames.clear()

    try:
        while True:
            now = time.monotonic()
            if now >= next_poll:
                next_poll = now + spec["poll"]
                if (stop is not None and stop.is_set()) or _cancelled(key):
                    break
            try:
                frame = reader.read()
            except framepool.TimeoutError:
                frame = None  # no frame within poll seconds: check stop, go on
            if frame is not None:
                img = np.asarray(frame)
                mean = float(img.mean())
                motion = 0.0 if prev is None or prev.shape != img.shape else \
                    float(np.abs(img.astype(np.int16) - prev).mean())
                prev = img.copy()
                frames.append(FrameStat(index=frame.index, time=frame.time,
                                        wall_time=frame.wall_time,
                                        age=time.time() - frame.wall_time,
                                        mean=mean, motion=motion))
                totals["frames"] += 1
                if spec["thumb"] and now >= next_thumb:
                    next_thumb = now + spec["thumb"]
                    try:  # charged to the worker's budget; not counted against max_held
                        thumb = frame.copy()
                    except framepool.LimitError:
                        thumb_limits += 1  # the budget is full: no thumbnail this time
                del img, frame
            if time.monotonic() >= next_chunk and (frames or thumb is not None):
                next_chunk = time.monotonic() + spec["chunk"]
                send(False)
                thumb = None
    except Exception as e:
        error = f"{type(e).__name__}: {e}"
        raise
    finally:
        reader.close()
        try:
            send(True)
        except Exception:
            pass  # the scheduler is gone: nobody to tell
    return totals


# ---- the client -----------------------------------------------------------------------------

class Fleet:
    """Cameras on a Dask cluster: start(), chunks(), stop()."""

    def __init__(self, client: Any, urls: list[str], *, size: tuple[int, int] = (320, 180),
                 chunk: float = 0.5, thumb: float = 5.0, poll: float = 0.5,
                 budget_fraction: float = 0.5) -> None:
        self.client = client
        self.id = uuid.uuid4().hex[:8]
        self.queue = distributed.Queue(f"fleet-{self.id}-chunks", client=client)
        self.stop_event = distributed.Event(f"fleet-{self.id}-stop", client=client)
        self.specs = [CameraSpec(camera=f"cam{i}", url=u, size=size, chunk=chunk, thumb=thumb,
                                 poll=poll, queue=self.queue.name, stop=self.stop_event.name)
                      for i, u in enumerate(urls)]
        self.budget_fraction = budget_fraction
        self.futures: dict[str, Any] = {}

    def start(self) -> None:
        """One task per camera, camera i preferring worker i mod W (sorted
        addresses): a dead worker's cameras may run anywhere."""
        workers = sorted(self.client.scheduler_info()["workers"])
        if not workers:
            raise RuntimeError("the cluster has no workers")
        for i, spec in enumerate(self.specs):
            self.futures[spec["camera"]] = self.client.submit(
                camera_task, spec, self.budget_fraction, key=f"fleet-{self.id}-{spec['camera']}",
                workers=[workers[i % len(workers)]], allow_other_workers=True, pure=False)

    def chunks(self, timeout: float = 1.0) -> Iterator[Chunk]:
        """Chunks as they arrive; returns after `timeout` seconds without one.
        (Polls with batch gets: a blocking get that times out is logged as an
        error by the scheduler.)"""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.queue.get(batch=True)
            if got:
                for data in got:
                    yield pickle.loads(data)  # a trusted cluster's own chunks
                deadline = time.monotonic() + timeout
            else:
                time.sleep(0.05)

    def stop(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Stops every camera (each closes its reader) and cancels what is
        left; returns the cameras' totals."""
        self.stop_event.set()
        futures = list(self.futures.values())
        try:  # (wait raises for a cancelled future)
            distributed.wait([f for f in futures if not f.cancelled()], timeout=timeout)
        except TimeoutError:
            pass  # cancelled below; each camera also sees its task's state
        results = [f.result() for f in futures if f.status == "finished"]
        self.client.cancel(futures)
        return results

    def open_readers(self) -> dict[str, int]:
        """{worker address: readers open in its process}."""
        return dict(self.client.run(open_readers))

    def budgets(self) -> dict[str, framepool.BudgetStats | None]:
        """{worker address: its frame budget's figures (None: no camera yet)}."""
        return dict(self.client.run(budget_stats))


def summarise(counts: dict[str, dict[str, Any]], chunk: Chunk) -> None:
    c = counts.setdefault(chunk["camera"], {"frames": 0, "thumbs": 0, "age_max": 0.0})
    c["frames"] += len(chunk["frames"])
    c["thumbs"] += chunk["thumbnail"] is not None
    c["age_max"] = max([c["age_max"]] + [f["age"] for f in chunk["frames"]])
    c.update(worker=chunk["worker"], pid=chunk["pid"], run=chunk["run"],
             reconnects=chunk["reconnects"], connected=chunk["connected"])


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("urls", nargs="+")
    p.add_argument("--scheduler", help="address of a running dask-scheduler")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    p.add_argument("--memory-limit", default="1GiB", help="per LocalCluster worker")
    p.add_argument("--duration", type=float, default=30.0, help="seconds (0: until Ctrl-C)")
    p.add_argument("--size", default="320x180", help="WxH of the analysed frames")
    p.add_argument("--chunk", type=float, default=0.5, help="seconds between chunks")
    p.add_argument("--thumb", type=float, default=5.0, help="seconds between thumbnails")
    p.add_argument("--poll", type=float, default=0.5,
                   help="seconds between a camera's checks for stop/cancel")
    p.add_argument("--budget-fraction", type=float, default=0.5,
                   help="each worker's frame budget, as a fraction of its memory limit")
    p.add_argument("--client-budget", default="64MiB",
                   help="the budget of the thumbnails unpickled here (e.g. 64MiB)")
    p.add_argument("--worker-profile", action="store_true",
                   help="keep Dask's statistical profiler on in LocalCluster workers")
    args = p.parse_args()
    if distributed is None:
        sys.exit("fleet: the distributed package is needed (Debian: python3-distributed)")
    if not args.worker_profile:
        # A worker's profiler keeps one profile per second for an hour
        # (profile_history, 3600 entries): with cameras always running that
        # is ~23 KB/s of RssAnon growth for the first hour (docs/SCALING.md).
        # Remote workers: DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False.
        importlib.import_module("dask").config.set(
            {"distributed.worker.profile.enabled": False})
    w, h = (int(v) for v in args.size.split("x"))
    # thumbnails unpickled here are framepool frames charged to this budget
    framepool.set_default_budget(framepool.Budget(
        int(importlib.import_module("dask.utils").parse_bytes(args.client_budget)),
        name="fleet client"))
    if args.scheduler:
        cluster = None
        client = distributed.Client(args.scheduler)
        client.upload_file(os.path.abspath(__file__))  # camera_task, by module name
    else:
        cluster = distributed.LocalCluster(n_workers=args.workers, threads_per_worker=2,
                                           memory_limit=args.memory_limit,
                                           dashboard_address=None)
        client = distributed.Client(cluster)
    fleet = Fleet(client, args.urls, size=(w, h), chunk=args.chunk, thumb=args.thumb,
                  poll=args.poll, budget_fraction=args.budget_fraction)
    counts: dict[str, dict[str, Any]] = {}
    fleet.start()
    t0 = last = time.monotonic()
    try:
        while not args.duration or time.monotonic() - t0 < args.duration:
            for chunk in fleet.chunks(timeout=0.5):
                summarise(counts, chunk)
                if chunk["error"]:
                    print(f"{chunk['camera']}: {chunk['error']}", flush=True)
                if time.monotonic() - t0 >= args.duration > 0 or \
                        time.monotonic() - last >= 5:
                    break
            if time.monotonic() - last >= 5:
                last = time.monotonic()
                el = last - t0
                print(f"[{el:6.0f} s] " + "  ".join(
                    f"{k}: {v['frames'] / el:.1f} fps r{v['run']}@{v['pid']} "
                    f"age<={v['age_max'] * 1e3:.0f}ms"
                    for k, v in sorted(counts.items())), flush=True)
    except KeyboardInterrupt:
        print("stopping", flush=True)
    finally:
        totals = fleet.stop()
        left = fleet.open_readers()
        for t in sorted(totals, key=lambda t: str(t["camera"])):
            print(f"{t['camera']}: {t['frames']} frames, {t['chunks']} chunks, pid {t['pid']}")
        print("readers left open per worker:", left, flush=True)
        client.close()
        if cluster is not None:
            cluster.close()
    return 0 if counts and not any(left.values()) else 1


if __name__ == "__main__":
    # Workers import camera_task from the module `fleet` (not __main__, which
    # would be pickled by value with its own copy of the per-process state).
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(importlib.import_module("fleet").main())
