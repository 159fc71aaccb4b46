"""dstream: a fault-tolerant discretized-stream engine with PySpark's DStream API."""

from dstream.context import Conf, Context, SparkConf
from dstream.rdd.partitioner import portable_hash
from dstream.rdd.rdd import RDD
from dstream.rdd.resultiterable import ResultIterable
from dstream.rdd.storage import StorageLevel
from dstream.streaming import DStream, StreamingContext, StreamingListener  # noqa: F401

__all__ = ["RDD", "Conf", "Context", "ResultIterable", "SparkConf", "StorageLevel", "portable_hash"]
from dstream.receiver.receiver import Receiver as Receiver
