"""Fault injection, workloads, histories, the exactly-once checker and recovery drills.

Reaches the engine only through its seams: the public API, an injected clock, a fault-injecting
fsspec filesystem, process handles and the listener bus.
"""
