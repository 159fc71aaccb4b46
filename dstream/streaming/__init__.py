"""The streaming layer: StreamingContext, DStreams, the graph, job generation and scheduling, listeners."""

from dstream.streaming.context import StreamingContext
from dstream.streaming.dstream import DStream
from dstream.streaming.listener import StreamingListener

__all__ = ["DStream", "StreamingContext", "StreamingListener"]
