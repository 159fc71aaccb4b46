"""What two CPU-bound task threads cost under the GIL, and what a longer switch interval would cost.

The local backend runs tasks on a thread pool (`local[N]`). Pure-Python tasks do not run in parallel
under the GIL; this measures what running two of them at once costs against running them one after
the other, and what raising `sys.setswitchinterval` (the one knob that trims that cost) would do to
an I/O thread such as a receiver's.

1. *Thread penalty*: the plain word-count loop of `bench/wordcount.py` over two halves of a line
   pool, on two threads at once against one after the other, for several vocabulary sizes (each
   thread's dict and key strings are its working set) and two switch intervals. Rounds alternate the
   two ways; medians are reported.
2. *Convoy*: round trips per second of a thread that sends and receives 100 bytes over a loopback
   `socketpair` (each call releases and retakes the GIL), alone and beside two CPU-bound threads, at
   several switch intervals. Each case runs for a fixed window.
3. *socketTextStream beside running tasks*: lines per second the engine's socket reader takes from
   a sender in another process (a 127.0.0.1 server sending as fast as it can), alone and beside two
   CPU-bound threads, with 8 KiB reads (io's default) and with the socket receiver's `READ_BUFFER_BYTES`.

Run: `.venv/bin/python bench/gil.py [--rounds 8] [--window-s 1.5]`. Everything is bounded by
`rounds` and `window-s`; the only listener is the sender's, on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

# This directory holds wal.py and checkpoint.py, which would shadow the packages of the same names.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cpu_threads import cpu_bound_threads
from line_sender import SENDER

import dstream.receiver.socket_receiver as socket_stream
from dstream import Context, StreamingContext

LINES_PER_THREAD = 100_000
WORDS_PER_LINE = 10


def make_lines(vocabulary: int, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(vocabulary)]
    return [" ".join(rng.choices(words, k=WORDS_PER_LINE)) for _ in range(n)]


def count_words(lines: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in lines:
        for word in line.split():
            counts[word] = counts.get(word, 0) + 1
    return counts


def one_after_the_other(halves: tuple[list[str], list[str]]) -> None:
    for half in halves:
        count_words(half)


def on_two_threads(halves: tuple[list[str], list[str]]) -> None:
    threads = [threading.Thread(target=count_words, args=(half,)) for half in halves]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def thread_penalty(vocabulary: int, switch_s: float, rounds: int) -> tuple[float, float]:
    """Median seconds (one after the other, on two threads) for two halves of word counting."""
    halves = (make_lines(vocabulary, LINES_PER_THREAD, 1), make_lines(vocabulary, LINES_PER_THREAD, 2))
    ways: tuple[Callable[[tuple[list[str], list[str]]], None], ...] = (one_after_the_other, on_two_threads)
    times: dict[str, list[float]] = {way.__name__: [] for way in ways}
    before = sys.getswitchinterval()
    sys.setswitchinterval(switch_s)
    try:
        for _ in range(rounds):
            for way in ways:
                start = time.perf_counter()
                way(halves)
                times[way.__name__].append(time.perf_counter() - start)
    finally:
        sys.setswitchinterval(before)
    return statistics.median(times["one_after_the_other"]), statistics.median(times["on_two_threads"])


def io_round_trips(switch_s: float, cpu_threads: int, window_s: float) -> float:
    """Round trips per second of an I/O thread beside `cpu_threads` CPU-bound threads."""
    stop = threading.Event()
    result: list[float] = []

    def ping() -> None:
        a, b = socket.socketpair()
        with a, b:
            n, start = 0, time.perf_counter()
            while not stop.is_set():
                a.sendall(b"x" * 100)
                b.recv(100)
                n += 1
            result.append(n / (time.perf_counter() - start))

    before = sys.getswitchinterval()
    sys.setswitchinterval(switch_s)
    pinger = threading.Thread(target=ping)
    try:
        with cpu_bound_threads(cpu_threads):
            pinger.start()
            stop.wait(window_s)  # the measurement window
            stop.set()
            pinger.join()
    finally:
        stop.set()
        sys.setswitchinterval(before)
    return result[0]


def socket_stream_lines(read_bytes: int, cpu_threads: int, window_s: float) -> float:
    """Lines per second the engine's socket reader receives beside `cpu_threads` CPU-bound threads."""
    stop = threading.Event()
    before = socket_stream.READ_BUFFER_BYTES
    sender = subprocess.Popen([sys.executable, "-c", SENDER], stdout=subprocess.PIPE, text=True)
    ssc: StreamingContext | None = None
    try:
        socket_stream.READ_BUFFER_BYTES = read_bytes
        ssc = StreamingContext(Context("local[2]", appName="bench-gil"), 0.2)
        assert sender.stdout is not None
        stream = ssc.socketTextStream("127.0.0.1", int(sender.stdout.readline()))
        stream.foreachRDD(lambda rdd: None)  # batches only drain the reader's buffer
        ssc.start()
        if not stream.wait_for_received(1, 30.0):
            raise TimeoutError("the socket stream received nothing in 30 s")
        with cpu_bound_threads(cpu_threads):
            start_lines, start = stream.received_count, time.perf_counter()
            stop.wait(window_s)  # the measurement window
            lines, elapsed = stream.received_count - start_lines, time.perf_counter() - start
        return lines / elapsed
    finally:
        stop.set()
        if ssc is not None:
            ssc.stop(stopSparkContext=True)
        socket_stream.READ_BUFFER_BYTES = before
        sender.kill()
        sender.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--window-s", type=float, default=1.5)
    args = parser.parse_args()
    default_ms = sys.getswitchinterval() * 1000
    print(f"thread penalty: two word counts of {LINES_PER_THREAD:,} lines each, medians of {args.rounds}")
    for vocabulary in (100, 10_000, 100_000):
        for switch_ms in (default_ms, 100.0):
            seq, par = thread_penalty(vocabulary, switch_ms / 1000, args.rounds)
            print(
                f"  vocabulary {vocabulary:>7,}, switch {switch_ms:>5g} ms: one after the other "
                f"{seq * 1000:6.0f} ms, two threads {par * 1000:6.0f} ms ({par / seq - 1:+.0%})"
            )
    print(f"convoy: round trips/s of an I/O thread on a loopback socketpair, {args.window_s:g} s windows")
    for switch_ms in (default_ms, 20.0, 50.0):
        alone = io_round_trips(switch_ms / 1000, 0, args.window_s)
        beside = io_round_trips(switch_ms / 1000, 2, args.window_s)
        print(
            f"  switch {switch_ms:>4g} ms: alone {alone:9,.0f}/s, beside two CPU-bound threads "
            f"{beside:7,.0f}/s"
        )
    print(f"socketTextStream's reader: lines/s from a sender process, {args.window_s:g} s windows")
    for read_bytes in (8192, socket_stream.READ_BUFFER_BYTES):
        alone = socket_stream_lines(read_bytes, 0, args.window_s)
        beside = socket_stream_lines(read_bytes, 2, args.window_s)
        print(
            f"  read size {read_bytes:>9,} B: alone {alone:11,.0f}, beside two CPU-bound threads "
            f"{beside:11,.0f}"
        )


if __name__ == "__main__":
    main()
