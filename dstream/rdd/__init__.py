"""The batch engine's RDD: partitions, lineage, shuffles, persistence and checkpoints."""
