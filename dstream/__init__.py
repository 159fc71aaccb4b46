"""dstream: a fault-tolerant discretized-stream engine with PySpark's DStream API."""

from dstream.context import Conf, Context, SparkConf
from dstream.rdd.partitioner import portable_hash
from dstream.rdd.rdd import RDD
from dstream.rdd.resultiterable import ResultIterable
from dstream.rdd.storage import StorageLevel
from dstream.receiver.receiver import Receiver
from dstream.streaming import DStream, StreamingContext, StreamingListener

__all__ = [
    "RDD",
    "Conf",
    "Context",
    "DStream",
    "Receiver",
    "ResultIterable",
    "SparkConf",
    "StorageLevel",
    "StreamingContext",
    "StreamingListener",
    "portable_hash",
]
