"""Metadata checkpoints, RDD data checkpoints, atomic publish and retention.

Stores bytes and plain dataclasses and reports completion through callbacks it is given; it never
imports the engine.
"""
