"""Driver recovery: checkpoint coordination and restoring a context's state from a checkpoint.

`coordinator` writes metadata checkpoints and says when cleanup is allowed; `data_checkpoints` writes
stateful streams' RDDs in the background; `restore` reads the newest valid checkpoint into a
`RecoveredState` that `StreamingContext.getOrCreate` consumes. The restart plan (which batches a
restarted driver re-runs) is the job generator's: `dstream.streaming.restart_plan`. See docs/recovery.md.
"""
