"""dstream: a fault-tolerant discretized-stream engine with PySpark's DStream API."""

from dstream.accumulators import Accumulator, AccumulatorParam
from dstream.broadcast import Broadcast
from dstream.context import Conf, Context, SparkConf
from dstream.rdd.partitioner import portable_hash
from dstream.rdd.rdd import RDD
from dstream.rdd.resultiterable import ResultIterable
from dstream.rdd.storage import StorageLevel
from dstream.receiver.receiver import Receiver
from dstream.streaming import DStream, StreamingContext, StreamingListener
from dstream.version import __version__

__all__ = [
    "RDD",
    "Accumulator",
    "AccumulatorParam",
    "Broadcast",
    "Conf",
    "Context",
    "DStream",
    "Receiver",
    "ResultIterable",
    "SparkConf",
    "StorageLevel",
    "StreamingContext",
    "StreamingListener",
    "__version__",
    "portable_hash",
]
