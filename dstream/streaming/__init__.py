"""The streaming layer: StreamingContext, DStreams, the graph, job generation and scheduling, listeners."""

from dstream.streaming.dstream import DStream
from dstream.streaming.listener import StreamingListener
from dstream.streaming_context import StreamingContext

__all__ = ["DStream", "StreamingContext", "StreamingListener"]
