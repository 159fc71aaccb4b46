"""`python -m dstream.cli`: the `dstream` console script without the installed entry point."""

from dstream.cli.main import main

main(prog_name="dstream")
