"""Fault injection, workloads, histories, the exactly-once checker and recovery drills.

Reaches the engine only through its seams: the public API, an injected clock, a fault-injecting
storage (a `wal.storage.DelegatingStorage` registered for a protocol, which sees every append, fsync,
publish, lock and read of every layer), process handles and the listener bus.
"""
