"""The `chaos_run` fixture (entry point pytest11): a user's own setup factory, chaos-tested from their
test suite; and the plugin's load imports nothing heavy."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.chaos

USER_PIPELINE = """
from dstream import Conf, Context, StreamingContext
from chaos.pipelines import workload_inputs, write_checked


def as_row(record):
    return (record["rid"], record["key"], record["seq"], record["value"])


def make_setup(spec):
    def setup():
        conf = Conf().setMaster("local[2]").set("spark.streaming.receiver.writeAheadLog.enable", "true")
        ssc = StreamingContext(Context(conf=conf), spec.batch_ms / 1000)
        ssc.checkpoint(spec.checkpoint)
        inputs = workload_inputs(ssc, spec)
        write_checked(ssc, spec, inputs, inputs["a"].map(as_row))
        return ssc

    return setup
"""

USER_TEST = """
from chaos.nemesis.schedule import Step
from chaos.workload import WorkloadSpec

# A driver dies between a batch's output and the checkpoint that records it as done: the batch runs
# again after recovery, which only a sink that commits exactly once absorbs.
KILL = (
    Step("crashpoint", 0.5, {"point": "metadata.after_write_before_publish@2"}),
    Step("crashpoint", 0.5, {"point": "metadata.after_write_before_publish@3"}),
)
SMALL = WorkloadSpec(producers_n=2)
# The canary's own window: a crash after its output is visible and before the batch counts as done, a
# certain duplicate. (The crash points above duplicate its output only when they fall on the write
# that records a batch as done, not on the next batch's first write: with two of them, one run in
# three stayed duplicate-free and this test failed.)
CANARY_KILL = (Step("crashpoint", 0.5, {"point": "sink.after_stage_before_commit@1"}),)


def test_my_pipeline_is_exactly_once(chaos_run):
    result = chaos_run("my_pipeline:make_setup", pipeline="stateless", schedule=KILL, workload=SMALL,
                       warmup_s=0.5)
    assert result.verdict["records"]["acknowledged"] > 0


def test_the_canary_fails_the_test(chaos_run):
    chaos_run("my_pipeline:make_setup", pipeline="stateless", sink="canary", schedule=CANARY_KILL,
              workload=SMALL, warmup_s=0.5, crash_wait_s=15.0)
"""


def test_a_users_setup_runs_under_faults_and_an_invalid_verdict_fails_the_test(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(my_pipeline=USER_PIPELINE, test_user=USER_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=170)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*was INVALID, expected valid*", '*"duplicated"*'])


def test_loading_the_plugin_imports_neither_the_engine_nor_the_runner() -> None:
    code = (
        "import sys, chaos.pytest_plugin; "
        "print(sorted(m for m in sys.modules if m.startswith(('dstream', 'chaos.runner'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
