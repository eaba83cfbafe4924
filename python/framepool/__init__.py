"""framepool: video frames decoded by FFmpeg into pooled, reference-counted
buffers, handed to Python without a copy and visible to Python's own memory
tools.

    import framepool, numpy as np
    with framepool.open("in.mp4", format="bgr24", max_held=4) as reader:
        for frame in reader:               # each step releases the last frame
            img = np.asarray(frame)        # zero-copy (h, w, 3) uint8 view
            ...

Frames: ``np.asarray(frame)`` (packed formats; ``frame.planes`` for planar
ones), ``frame.release()`` / ``with frame:``, ``pts``, ``time``, ``index``,
``flags``, ``weakref.ref(frame)``, ``sys.getsizeof(frame)`` counts the pixels.
A view keeps its frame alive; ``release()`` with live views raises
BufferError, like ``memoryview.release()``.

tracemalloc: while Python holds a frame its pixel buffer is tracked in domain
``TRACEMALLOC_DOMAIN`` at the line that received it, so
``snapshot.statistics("lineno")`` names the lines that hold frames.

Bounds: holding ``max_held`` frames of a reader and asking for another raises
``LimitError``, whose message lists the lines holding them.

Diagnostics: ``summary()``, ``leak_report()``, ``growth()`` (text, as the C
library prints them; ``diag_configure("sites")`` records creation lines),
``MemTrack`` (memory-per-frame verdict).
"""
from ._framepool import (  # noqa: F401
    C_VERSION, FLAG_CORRUPT, FLAG_KEY, FLAG_READONLY, TRACEMALLOC_DOMAIN,
    CancelledError, DecodeError, Error, FormatError, Frame, InvalidError,
    LimitError, MemTrack, NoDisplayError, NoStreamError, NotFoundError,
    OutOfMemoryError, Plane, InputOutputError, Reader, TimeoutError, diag_configure,
    growth, leak_report, live_bytes, open, summary,
)

__version__ = C_VERSION

__all__ = [
    "open", "Reader", "Frame", "Plane", "MemTrack",
    "summary", "leak_report", "growth", "diag_configure", "live_bytes",
    "Error", "LimitError", "FormatError", "NoStreamError", "DecodeError",
    "InputOutputError", "NotFoundError", "TimeoutError", "CancelledError",
    "InvalidError", "OutOfMemoryError", "NoDisplayError",
    "TRACEMALLOC_DOMAIN", "FLAG_KEY", "FLAG_CORRUPT", "FLAG_READONLY",
]
