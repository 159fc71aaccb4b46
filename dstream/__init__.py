"""dstream: a fault-tolerant discretized-stream engine with PySpark's DStream API."""
