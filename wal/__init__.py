"""Segmented, checksummed, crash-safe write-ahead log over fsspec.

The leaf layer: it stores bytes with a time in milliseconds and knows nothing of batches or DStreams.
"""
