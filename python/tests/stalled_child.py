"""Run by test_threads.py in a child process (so that a hang is a timeout,
not a stuck test run): reads a TCP source that stalls after some frames.

  stalled_child.py sigint URL   main thread blocked in a read; SIGINT after
                                1.5 s must raise KeyboardInterrupt promptly
  stalled_child.py resume URL   the same, then reads on after the interrupt
  stalled_child.py thread URL   a thread blocked in a read must not hold the
                                GIL; reader.interrupt() ends it
"""
import os
import signal
import sys
import threading
import time

import framepool


def sigint_mode(url, resume=False):
    reader = framepool.open(url, format="gray8")
    sent = []

    def fire():
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    threading.Timer(1.5, fire).start()
    n = 0
    try:
        for frame in reader:
            n += 1
        print("END", n)
        return 1
    except KeyboardInterrupt:
        latency = time.monotonic() - sent[0]
    after = 0
    if resume:  # the server sends the rest later: the same reader goes on
        for frame in reader:
            after += 1
    t = time.monotonic()
    reader.close()
    print(f"INTERRUPTED frames={n} latency={latency:.3f} close={time.monotonic() - t:.3f} "
          f"after={after}")
    return 0


def thread_mode(url):
    result = {}

    def read():
        reader = framepool.open(url, format="gray8")
        result["reader"] = reader
        n = 0
        try:
            for frame in reader:
                n += 1
        except framepool.CancelledError as e:
            result["error"] = str(e)
        result["frames"] = n

    t = threading.Thread(target=read)
    t.start()
    time.sleep(1.5)  # the thread is now blocked in a read
    # Python code runs meanwhile: the blocked read released the GIL
    end = time.monotonic() + 0.5
    spins = 0
    while time.monotonic() < end:
        spins += 1
    result["reader"].interrupt()
    t.join(5)
    if t.is_alive():
        print("STILL BLOCKED")
        return 1
    print(f"CANCELLED frames={result['frames']} spins={spins} error={result.get('error')!r}")
    return 0


if __name__ == "__main__":
    mode, url = sys.argv[1], sys.argv[2]
    if mode == "thread":
        sys.exit(thread_mode(url))
    sys.exit(sigint_mode(url, resume=(mode == "resume")))
