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

Errors: every failure raises a ``framepool.Error`` subclass (``LimitError``,
``TimeoutError``, ...) whose ``code`` is a ``framepool.ErrorCode`` (an IntEnum
of the C library's FP_E* values), also module constants: ``e.code ==
framepool.ELIMIT``.

Bounds: holding ``max_held`` frames of a reader and asking for another raises
``LimitError``, whose message lists the lines holding them. ``Budget(max_bytes)``
caps frame memory in bytes: ``open(..., budget=b)`` charges a reader's pools
to it, ``set_default_budget(b)`` charges ``Frame.copy()`` and unpickled frames.

Processes: ``readers()`` lists this process's open readers and
``interrupt_all()`` ends their blocked reads; a forked child inherits them
as abandoned; frames pickle to standalone copies. framepool's and FFmpeg's
lines go to the ``logging`` logger ``"framepool"`` (``log_level()``).

Installing: ``pip install --no-build-isolation /path/to/framepool`` (the
repository root holds pyproject.toml) builds this package with the library
compiled into the extension; ``.pyi`` stubs and ``py.typed`` make it typed.
``from framepool import *`` does not shadow the builtin ``open``: call
``framepool.open``.

Diagnostics: ``summary()``, ``leak_report()``, ``growth()`` (text, as the C
library prints them; ``diag_configure("sites")`` records creation lines),
``MemTrack`` (memory-per-frame verdict).
"""
from ._framepool import (  # noqa: F401
    C_VERSION, FLAG_CORRUPT, FLAG_KEY, FLAG_READONLY, TRACEMALLOC_DOMAIN, Budget,
    CancelledError, DecodeError, Error, ErrorCode, FormatError, Frame, InvalidError,
    LimitError, MemTrack, NoDisplayError, NoStreamError, NotFoundError,
    OutOfMemoryError, Plane, InputOutputError, Reader, TimeoutError, diag_configure,
    get_default_budget, growth, interrupt_all, leak_report, live_bytes, log_flush, log_level,
    open, readers, set_default_budget, summary,
)
# The error codes, also as module constants: framepool.ELIMIT is ErrorCode.ELIMIT.
from ._framepool import (  # noqa: F401
    EAGAIN, EBUSY, ECANCELED, EDECODE, EFORMAT, EHELD, EINVAL, EIO, ELIMIT, ENODISPLAY,
    ENOENT, ENOMEM, ENOSTREAM, ETIMEDOUT, EUNKNOWN,
)
from ._types import (  # noqa: F401
    BudgetStats, Interpolation, LiveMode, LiveOptions, MemTrackResult, PoolStats, ReaderInfo,
    ReaderStats,
)

# The package's version is the C library's: pip's metadata (setup.py reads
# FP_VERSION_STRING) and framepool.C_VERSION agree.
__version__: str = C_VERSION

# The bare error constants (ELIMIT, EIO, ...) are not in __all__ either: they
# would clash with errno's names under `from framepool import *`; ErrorCode is.
# `open` and `TimeoutError` are deliberately not in __all__: `from framepool
# import *` must not shadow builtins. Use framepool.open and
# framepool.TimeoutError (a subclass of the builtin TimeoutError).
__all__ = [
    "Reader", "Frame", "Plane", "MemTrack", "Budget", "set_default_budget",
    "get_default_budget",
    "summary", "leak_report", "growth", "diag_configure", "live_bytes",
    "readers", "interrupt_all", "log_level", "log_flush",
    "Error", "ErrorCode", "LimitError", "FormatError", "NoStreamError", "DecodeError",
    "InputOutputError", "NotFoundError", "CancelledError",
    "InvalidError", "OutOfMemoryError", "NoDisplayError",
    "TRACEMALLOC_DOMAIN", "FLAG_KEY", "FLAG_CORRUPT", "FLAG_READONLY", "C_VERSION",
    "ReaderInfo", "ReaderStats", "PoolStats", "MemTrackResult", "LiveOptions", "BudgetStats",
]
