"""The `dstream` command line: demo, WAL and checkpoint tooling, drills."""
