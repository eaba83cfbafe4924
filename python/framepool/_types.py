"""The shapes of the dicts framepool returns or takes, as TypedDicts, for
type checkers and editors (framepool.ReaderInfo, ReaderStats, PoolStats,
MemTrackResult, LiveOptions, BudgetStats). At run time they are plain dicts."""
from typing import Literal, Required, TypedDict

LiveMode = Literal["latest", "all"]
Interpolation = Literal["fast_bilinear", "bilinear", "bicubic", "experimental", "nearest",
                        "area", "bicublin", "gauss", "sinc", "lanczos", "spline"]


class LiveOptions(TypedDict, total=False):
    """open(live=...): C's fp_live_options. Times are in seconds."""
    mode: Required[LiveMode]
    queue: int
    reconnect_min: float
    reconnect_max: float
    max_reconnects: int
    stall: float
    repeat_ok: bool
    open_timeout: float
    buffer: int


class PoolStats(TypedDict):
    """Reader.stats["pool"] (the decoder's) and ["out_pool"] (conversion)."""
    allocated: int
    outstanding: int
    idle: int
    peak: int
    hits: int
    misses: int
    bytes: int
    idle_bytes: int
    max_buffers: int


class BudgetStats(TypedDict):
    """Budget.stats: a snapshot of C's fp_budget_stats."""
    max_bytes: int    # the cap
    used_bytes: int   # bytes of the buffers allocated by the pools on the budget (readers'
                      # pools, their idle buffers included; copies and unpickled frames made
                      # under set_default_budget)
    peak_bytes: int   # the highest used_bytes
    refusals: int     # buffers refused because the budget was full (after reclaiming)
    reclaimed: int    # idle buffers freed to make room
    pools: int        # pools attached now (each reader's; one per format and size of copies)


class ReaderInfo(TypedDict):
    """Reader.info: the stream and what is delivered."""
    width: int
    height: int
    native_format: str
    out_width: int
    out_height: int
    format: str
    fps: float
    duration: float
    frame_count: int
    time_base: tuple[int, int]
    sar: tuple[int, int]
    stream_index: int
    codec: str
    container: str
    threads: int
    zero_copy: bool
    decoder_buffers: int
    max_held: int
    pool_max_buffers: int
    out_pool_max_buffers: int


class ReaderStats(TypedDict):
    """Reader.stats: counters (the live ones are 0 for files); every key is
    always present. help(framepool.Reader.stats) says what each counts."""
    packets: int
    decoded: int
    delivered: int
    skipped: int
    corrupt: int
    decode_errors: int
    size_changes: int
    loops: int
    loops_replayed: int
    held: int
    python_held: int
    decoder_held: int
    pool: PoolStats
    out_pool: PoolStats
    reconnects: int
    connects: int
    dropped: int
    stalls: int
    connected: bool
    age_last: float
    age_max: float
    queued: int
    budget_drops: int
    packets_dropped: int
    packets_queued: int
    first_frame: float
    wrapped: int


class MemTrackResult(TypedDict):
    """MemTrack.result(): the memory-per-frame verdict."""
    verdict: Literal["PASS", "FAIL", "INCONCLUSIVE"]
    frames: int
    warmup_frames: int
    slope: float
    window_delta: int
    peak_rss: int
    last_rss: int
    faults_per_frame: float
    live_slope: float
    live_flat: int
    live_bytes: int
    idle_bytes: int
