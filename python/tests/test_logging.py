"""Logging the Python way (issue 24): FFmpeg's and framepool's lines reach
logging.getLogger("framepool") with levels mapped and URLs redacted, emitted
by framepool's log thread (never from a decoder thread, never while a
framepool lock is held), and nothing reaches stderr meanwhile."""
import logging
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

import framepool
from framepool import _framepool as C


class Collect(logging.Handler):
    def __init__(self, until):
        super().__init__(logging.DEBUG)
        self.records, self.until, self.done = [], until, threading.Event()

    def emit(self, record):
        self.records.append(record)
        if self.until(record):
            self.done.set()


@pytest.fixture
def handler():
    logger = logging.getLogger("framepool")
    h = Collect(lambda r: "refused" in r.getMessage().lower())
    logger.addHandler(h)
    old = C.log_level()
    try:
        yield h
    finally:
        C.log_level(old)
        logger.removeHandler(h)


def refused_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_refused_tcp_camera_logs_to_logging_not_stderr(handler, capfd):
    url = f"tcp://admin:hunter2@127.0.0.1:{refused_port()}"
    live = {"mode": "latest", "max_reconnects": 3, "reconnect_min": 0.01,
            "reconnect_max": 0.02}
    with framepool.open(url, live=live, timeout=30) as r:
        with pytest.raises(framepool.Error, match="gave up"):
            r.read()
    assert handler.done.wait(30), [r.getMessage() for r in handler.records]
    C.log_flush()
    out, err = capfd.readouterr()
    refused = [r for r in handler.records if "refused" in r.getMessage().lower()]
    assert refused and all(r.name == "framepool" for r in refused)
    assert all(r.levelno >= logging.WARNING for r in refused)
    assert all(r.fp_source for r in refused)
    for r in handler.records:
        assert "hunter2" not in r.getMessage()
    assert "refused" not in err.lower() and "hunter2" not in err, err
    assert "hunter2" not in out


def test_below_warning_is_silent_by_default_and_log_level_opens_it(handler, clips):
    assert C.log_level() == logging.WARNING
    with framepool.open(clips.h264, format="bgr24") as r:
        r.read()
    C.log_flush()
    assert not [r for r in handler.records if r.levelno < logging.WARNING]
    C.log_level(logging.DEBUG)
    with framepool.open(clips.h264, format="bgr24") as r:
        r.read()
    C.log_flush()
    assert [r for r in handler.records if r.levelno < logging.WARNING]


def test_decoder_threads_logging_while_readers_close_do_not_deadlock(handler, clips, tmp_path):
    """Decoder threads log (DEBUG) while the GIL holder closes readers, which
    joins them: lines are queued, never emitted from those threads."""
    C.log_level(logging.DEBUG)
    data = bytearray(clips.ts_long.read_bytes())
    for i in range(len(data) // 3, 2 * len(data) // 3, 997):
        data[i] ^= 0x55
    bad = tmp_path / "corrupt.ts"
    bad.write_bytes(bytes(data))
    for _ in range(10):
        with framepool.open(bad, format="gray8", threads=4) as r:
            for i, f in enumerate(r):
                if i == 40:
                    break
    C.log_flush()
    assert any(r.fp_source not in ("framepool",) for r in handler.records)


def test_a_handler_that_calls_framepool_does_not_deadlock(clips):
    """A handler runs on framepool's log thread with the GIL: calling
    log_flush() or opening a reader from it (which logs again) returns."""
    logger = logging.getLogger("framepool")
    seen = threading.Event()

    class Reentrant(logging.Handler):
        def emit(self, record):
            C.log_flush()
            if not seen.is_set():
                seen.set()
                with framepool.open(clips.h264, format="gray8") as r:
                    r.read()

    h = Reentrant(logging.DEBUG)
    logger.addHandler(h)
    old = C.log_level(logging.DEBUG)
    try:
        with framepool.open(clips.h264, format="gray8", threads=2) as r:
            for _ in r:
                pass
        assert seen.wait(30)
        C.log_flush()
    finally:
        C.log_level(old)
        logger.removeHandler(h)


def test_log_flush_in_a_handler_while_the_log_thread_waits_for_its_lock(clips):
    """A handler (which holds logging's handler lock while it emits) calls
    log_flush() while framepool's log thread has taken a batch and waits for
    that very lock: the flush must not wait for the log thread. It did, and
    the two waited for each other for good (found by the suite under load).
    In a child, so that a deadlock fails the test instead of hanging it."""
    code = textwrap.dedent("""
        import logging, sys, threading, time, framepool
        from framepool import _framepool as C
        entered = threading.Event()

        class Slow(logging.Handler):
            def emit(self, record):
                if threading.current_thread() is threading.main_thread() \\
                        and not entered.is_set():
                    entered.set()
                    time.sleep(0.5)  # the log thread takes a batch, waits for our lock
                    C.log_flush()

        logging.getLogger("framepool").addHandler(Slow(logging.DEBUG))
        C.log_level(logging.DEBUG)
        stop = threading.Event()

        def decode():  # DEBUG lines without pause, from decoder threads
            while not stop.is_set():
                with framepool.open(sys.argv[1], format="gray8", threads=2) as r:
                    for _ in r:
                        pass

        t = threading.Thread(target=decode, daemon=True)
        t.start()
        deadline = time.monotonic() + 30
        while not entered.is_set() and time.monotonic() < deadline:
            C.log_flush()  # emits on this thread: the handler runs here
        stop.set()
        t.join(30)
        print("FLUSHED" if entered.is_set() else "NO LINE")
    """)
    try:
        p = subprocess.run([sys.executable, "-c", code, str(clips.h264)], capture_output=True,
                           text=True, timeout=60)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"log_flush() in a handler deadlocked with the log thread: {e.stderr}")
    assert p.returncode == 0 and p.stdout.strip() == "FLUSHED", p.stdout + p.stderr


@pytest.mark.parametrize("form", ["tcp://admin:hunter2@127.0.0.1:{port}",
                                  "rtsp:/admin:hunter2@127.0.0.1:{port}/live",
                                  "rtsp:admin:hunter2@127.0.0.1:{port}/live"])
def test_repr_and_errors_never_show_the_password(form):
    """repr(reader) and the give-up error show the source as every framepool
    message does: each user-info form FFmpeg parses becomes ***."""
    url = form.format(port=refused_port())
    live = {"mode": "latest", "max_reconnects": 1, "reconnect_min": 0.01,
            "reconnect_max": 0.02}
    with framepool.open(url, live=live, timeout=30) as r:
        shown = repr(r)
        assert "hunter2" not in shown and "***" in shown, shown
        with pytest.raises(framepool.Error) as e:
            r.read()
        assert "hunter2" not in str(e.value), str(e.value)
    assert "hunter2" not in repr(r)
