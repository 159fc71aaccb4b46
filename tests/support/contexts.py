"""Engine and streaming contexts for tests, stopped cleanly whatever the test left running."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dstream.clock import Clock
from dstream.context import Conf, Context
from dstream.streaming import StreamingContext


@contextmanager
def engine_context(conf: Conf | None = None, master: str = "local[2]") -> Iterator[Context]:
    """A Context; on exit, any active StreamingContext is stopped first, then the Context."""
    ctx = Context(master, conf=conf)
    try:
        yield ctx
    finally:
        active = StreamingContext.getActive()
        if active is not None:
            active.stop(stopSparkContext=False)
        ctx.stop()


@contextmanager
def streaming_context(sc: Context, clock: Clock, batch_s: float = 1.0) -> Iterator[StreamingContext]:
    """A StreamingContext on `clock`, stopped (leaving `sc` running) on exit."""
    context = StreamingContext(sc, batch_s, clock=clock)
    try:
        yield context
    finally:
        context.stop(stopSparkContext=False)
