"""The pytest plugin (entry point `pytest11`): chaos-test your own pipeline with the `chaos_run` fixture.

    # tests/test_my_pipeline.py
    from chaos.pipelines import workload_inputs, write_checked

    def make_setup(spec):                       # the factory of the function you give getOrCreate
        def setup():
            ssc = StreamingContext(Context(conf=...), spec.batch_ms / 1000)
            ssc.checkpoint(spec.checkpoint)
            inputs = workload_inputs(ssc, spec)           # the workload's records, as dicts
            rows = inputs["a"].map(lambda r: (r["rid"], r["key"], r["seq"], r["value"]))
            write_checked(ssc, spec, inputs, rows)        # consumed ids + rows, one sink transaction
            return ssc
        return setup

    def test_my_pipeline_is_exactly_once(chaos_run):
        chaos_run("tests.test_my_pipeline:make_setup", pipeline="stateless",
                  faults=("driver-kill", "crashpoint"), seed=3)

The fixture runs the setup in driver children under the seeded fault schedule, drives the workload,
checks the history against the committed output, and fails the test with the checker's findings when
the verdict is invalid; it returns the `RunResult` otherwise. The plugin is off unless a test asks for
the fixture: loading it imports nothing but pytest (the runner is imported when the fixture is used).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def _summary(verdict: dict[str, Any]) -> str:
    shown = {k: verdict[k] for k in ("error_types", "records") if k in verdict}
    for kind in verdict.get("error_types", []):
        shown[kind] = verdict.get(kind)
    return json.dumps(shown, indent=1, default=str)


@pytest.fixture
def chaos_run(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[..., Any]:
    """`chaos_run(setup, *, pipeline="stateless", faults=(...), seed=0, expect_valid=True, **config)`.

    `setup` is "module:function" of a setup factory (`function(spec)` returns the zero-argument setup
    function for getOrCreate; see `chaos.pipelines.workload_inputs` and `write_checked`), or None for
    the built-in pipeline named by `pipeline`. Other keywords are `chaos.runner.RunConfig` fields.
    """
    from chaos.runner import RunConfig, run_chaos  # lazy: the plugin loads with every pytest run

    runs: list[int] = []

    def run(setup: str | None = None, *, expect_valid: bool = True, **config: Any) -> Any:
        python_path = (str(request.config.rootpath), *config.pop("python_path", ()))
        if "faults" in config:
            config["faults"] = tuple(config["faults"])
        result = run_chaos(
            RunConfig(setup=setup, python_path=python_path, **config), tmp_path / f"chaos-{len(runs)}"
        )
        runs.append(1)
        if result.valid != expect_valid:
            pytest.fail(
                f"chaos run in {result.run_dir} was {'valid' if result.valid else 'INVALID'}, expected "
                f"{'valid' if expect_valid else 'invalid'}:\n{_summary(result.verdict)}",
                pytrace=False,
            )
        return result

    return run
