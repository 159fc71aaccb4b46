"""SIGTERM stops a streaming application gracefully (Spark's `spark.streaming.stopGracefullyOnShutdown`).

Service managers stop a process with SIGTERM. Spark registers a shutdown hook that stops the
StreamingContext gracefully when the setting is true; Python's nearest equivalent is a SIGTERM handler.
`install_sigterm_stop` sets one that runs the given graceful stop (the StreamingContext's, bounded by its
graceful-stop timeout) and then raises `SystemExit(0)` in the main thread, so a program blocked in
`awaitTermination` ends with status 0 after every batch it generated ran. The handler puts the previous
one back first, so a second SIGTERM acts as it did before (by default: the process ends at once).

Signal handlers can only be set from the main thread; elsewhere nothing is installed and a warning is
logged.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)


def install_sigterm_stop(stop: Callable[[], None]) -> Callable[[], None]:
    """On SIGTERM call `stop()` then exit with status 0; returns a function that removes the handler."""
    if threading.current_thread() is not threading.main_thread():
        log.warning("spark.streaming.stopGracefullyOnShutdown: not the main thread, no SIGTERM handler set")
        return lambda: None
    previous: Any = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        log.warning("SIGTERM: stopping the streaming context gracefully")
        stop()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_sigterm)

    def uninstall() -> None:
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is on_sigterm
        ):
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)

    return uninstall
