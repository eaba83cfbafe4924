# Type stubs of the package framepool: the extension's names (see
# _framepool.pyi) and the TypedDicts of _types.py. `open` is exported but not
# in __all__ (it would shadow the builtin under `from framepool import *`).
from ._framepool import C_VERSION as C_VERSION
from ._framepool import FLAG_CORRUPT as FLAG_CORRUPT
from ._framepool import FLAG_KEY as FLAG_KEY
from ._framepool import FLAG_READONLY as FLAG_READONLY
from ._framepool import TRACEMALLOC_DOMAIN as TRACEMALLOC_DOMAIN
from ._framepool import Budget as Budget
from ._framepool import CancelledError as CancelledError
from ._framepool import DecodeError as DecodeError
from ._framepool import Error as Error
from ._framepool import ErrorCode as ErrorCode
from ._framepool import EAGAIN as EAGAIN
from ._framepool import EBUSY as EBUSY
from ._framepool import ECANCELED as ECANCELED
from ._framepool import EDECODE as EDECODE
from ._framepool import EFORMAT as EFORMAT
from ._framepool import EHELD as EHELD
from ._framepool import EINVAL as EINVAL
from ._framepool import EIO as EIO
from ._framepool import ELIMIT as ELIMIT
from ._framepool import ENODISPLAY as ENODISPLAY
from ._framepool import ENOENT as ENOENT
from ._framepool import ENOMEM as ENOMEM
from ._framepool import ENOSTREAM as ENOSTREAM
from ._framepool import ETIMEDOUT as ETIMEDOUT
from ._framepool import EUNKNOWN as EUNKNOWN
from ._framepool import FormatError as FormatError
from ._framepool import Frame as Frame
from ._framepool import InputOutputError as InputOutputError
from ._framepool import InvalidError as InvalidError
from ._framepool import LimitError as LimitError
from ._framepool import MemTrack as MemTrack
from ._framepool import NoDisplayError as NoDisplayError
from ._framepool import NoStreamError as NoStreamError
from ._framepool import NotFoundError as NotFoundError
from ._framepool import OutOfMemoryError as OutOfMemoryError
from ._framepool import Plane as Plane
from ._framepool import Reader as Reader
from ._framepool import TimeoutError as TimeoutError
from ._framepool import diag_configure as diag_configure
from ._framepool import get_default_budget as get_default_budget
from ._framepool import growth as growth
from ._framepool import interrupt_all as interrupt_all
from ._framepool import leak_report as leak_report
from ._framepool import live_bytes as live_bytes
from ._framepool import log_flush as log_flush
from ._framepool import log_level as log_level
from ._framepool import open as open
from ._framepool import readers as readers
from ._framepool import set_default_budget as set_default_budget
from ._framepool import summary as summary
from ._types import BudgetStats as BudgetStats
from ._types import Interpolation as Interpolation
from ._types import LiveMode as LiveMode
from ._types import LiveOptions as LiveOptions
from ._types import MemTrackResult as MemTrackResult
from ._types import PoolStats as PoolStats
from ._types import ReaderInfo as ReaderInfo
from ._types import ReaderStats as ReaderStats

__version__: str
__all__: list[str]
