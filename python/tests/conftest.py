"""Fixtures: clips made at test time with the ffmpeg command (testsrc2), and
the real footage in ../shared/videos when it exists."""
import os
import pathlib
import shutil
import subprocess

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
