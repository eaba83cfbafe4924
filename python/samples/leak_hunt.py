#!/usr/bin/python3
"""A planted leak found with Python's own tools: a debugging list that keeps
every 10th frame. tracemalloc's snapshot diff names the line that received
the frames that pile up, objgraph's show_growth counts them, and the reader's
max_held bound stops the loop with a LimitError naming the same line, long
before memory runs out.

    python3 leak_hunt.py INPUT
"""
import io
import sys
import tracemalloc

import objgraph

import framepool

debug_frames: list[framepool.Frame] = []  # the leak: meant for a post-mortem, never emptied


def process(frame: framepool.Frame) -> None:
    if frame.index % 10 == 0:
        debug_frames.append(frame)


def main(path: str) -> int:
    tracemalloc.start()
    objgraph.growth()
    reader = framepool.open(path, format="bgr24", max_held=16)
    before: tracemalloc.Snapshot | None = None
    try:
        for frame in reader:
            process(frame)
            if frame.index == 50:
                before = tracemalloc.take_snapshot()
            if frame.index == 120:
                break
        del frame
        after = tracemalloc.take_snapshot()
        assert before is not None, "the input has fewer than 51 frames"
        dom = [tracemalloc.DomainFilter(True, framepool.TRACEMALLOC_DOMAIN)]
        print("framepool frames held, by line (tracemalloc, frames 50 -> 120):")
        for stat in after.filter_traces(dom).compare_to(before.filter_traces(dom),
                                                        "lineno")[:3]:
            print("  ", stat)
        out = io.StringIO()
        objgraph.show_growth(limit=5, file=out)
        print("objgraph.show_growth():")
        print("".join("   " + line + "\n" for line in out.getvalue().splitlines()), end="")
        for frame in reader:  # the bound catches what keeps growing
            process(frame)
        print("no LimitError: the leak went unnoticed")
        return 1
    except framepool.LimitError as e:
        print("LimitError:", e)
        return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
