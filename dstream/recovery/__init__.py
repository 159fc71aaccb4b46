"""Driver recovery: the restart plan, checkpoint coordination and restoring a context from a checkpoint.

`plan` is pure (which batches a restarted driver re-runs); `coordinator` writes metadata checkpoints
and drives cleanup; `data_checkpoints` writes stateful streams' RDDs in the background; `restore`
rebuilds a StreamingContext from the newest valid checkpoint. See docs/recovery.md.
"""
