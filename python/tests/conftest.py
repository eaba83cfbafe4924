"""Fixtures: clips made at test time with the ffmpeg command (testsrc2), and
the real footage in ../shared/videos when it exists."""
import faulthandler
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time

import pytest

SOURCE_DIR = pathlib.Path(os.environ.get("FP_SOURCE_DIR",
                                         pathlib.Path(__file__).resolve().parents[2]))
SHARED_VIDEOS = SOURCE_DIR.parent / "shared" / "videos"


def ffmpeg(*args):
    if not shutil.which("ffmpeg"):
        pytest.skip("the ffmpeg command is needed to make test clips")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)], check=True)


class Clips:
    """Clips made on first use, once per test session."""

    def __init__(self, root):
        self.root = root

    def _make(self, name, *args):
        path = self.root / name
        if not path.exists():
            tmp = self.root / ("tmp-" + name)
            ffmpeg(*args, tmp)
            tmp.rename(path)
        return path

    @property
    def h264(self):
        """320x240, 50 frames at 25 fps, H.264 with B-frames, in MP4."""
        return self._make("h264.mp4", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
                          "-t", "2", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-g", "25")

    @property
    def mpeg4(self):
        """176x144, 30 frames, MPEG-4 part 2 in AVI."""
        return self._make("mpeg4.avi", "-f", "lavfi", "-i", "testsrc2=size=176x144:rate=15",
                          "-t", "2", "-c:v", "mpeg4")

    @property
    def ts_long(self):
        """320x240, 12 s at 25 fps (300 frames), H.264 in MPEG-TS."""
        return self._make("long.ts", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
                          "-t", "12", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-g", "25",
                          "-f", "mpegts")

    @property
    def tiny(self):
        """64x48, 6 frames at 25 fps, H.264 in MP4: cheap to open thousands of times."""
        return self._make("tiny.mp4", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25",
                          "-frames:v", "6", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-g", "3")

    @property
    def audio_only(self):
        return self._make("audio.m4a", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                          "-c:a", "aac")


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    return Clips(tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="session")
def shared_videos():
    if not SHARED_VIDEOS.is_dir():
        pytest.skip(f"real footage not found in {SHARED_VIDEOS} (only in the project's "
                    "shared checkout); the generated clips still run")
    return SHARED_VIDEOS


# ---- a hung test ends the run with what every thread was doing ---------------------------
#
# A deadlock would otherwise sit until ctest's timeout and leave only pytest's
# progress dots. FP_TEST_HANG_S (default 240) after a test began,
# faulthandler prints every Python thread's stack to fd 2 (from a C thread of
# its own, so even while the GIL is held; ctest runs pytest with
# --capture=sys so that fd 2 is not a capture file then); two seconds later
# the watchdog prints the test's id and every thread's native stack (gdb) and
# ends the process with exit status 70. (If the hang holds the GIL the watchdog cannot run: the
# Python stacks are then what ctest's timeout leaves.)

HANG_S = float(os.environ.get("FP_TEST_HANG_S", "240"))
_current = {"id": None, "since": 0.0}


def _native_stacks():
    gdb = shutil.which("gdb")
    if not gdb:
        return "(no gdb: native stacks not shown)"
    try:
        p = subprocess.run([gdb, "-p", str(os.getpid()), "-batch", "-nx", "-ex",
                            "thread apply all bt"], capture_output=True, text=True,
                           timeout=120)
        return p.stdout + p.stderr
    except (OSError, subprocess.SubprocessError) as e:
        return f"(gdb failed: {e})"


def _watch():
    while True:
        time.sleep(1.0)
        test, since = _current["id"], _current["since"]
        if test is None or time.monotonic() - since < HANG_S + 2:
            continue
        if _capman is not None:  # as pytest-timeout does: show it, not capture it
            _capman.suspend_global_capture(in_=True)
        report = (f"\n*** {test} has run {HANG_S:.0f} s: a hang; every thread follows ***\n"
                  + _native_stacks())
        os.write(2, report.encode(errors="replace"))
        faulthandler.dump_traceback(file=sys.__stderr__, all_threads=True)
        os._exit(70)


_capman = None


def pytest_configure(config):
    global _capman
    _capman = config.pluginmanager.getplugin("capturemanager")
    threading.Thread(target=_watch, name="fp-test-watchdog", daemon=True).start()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _current["id"], _current["since"] = item.nodeid, time.monotonic()
    faulthandler.dump_traceback_later(HANG_S, file=sys.__stderr__)
    yield
    faulthandler.cancel_dump_traceback_later()
    _current["id"] = None
