"""Context lifecycle, master URLs and configuration (PySpark's SparkContext/SparkConf semantics)."""

from __future__ import annotations

import os
import pickle
import threading

import pytest

from dstream import Conf, Context, SparkConf
from dstream.backends import LocalBackend
from dstream.errors import DStreamError, DStreamStateError
from dstream.master import MasterSpec, parse_master


@pytest.mark.parametrize(
    ("url", "spec"),
    [
        ("local", MasterSpec("local", "local", threads=1)),
        ("local[3]", MasterSpec("local[3]", "local", threads=3)),
        ("local[*]", MasterSpec("local[*]", "local", threads=os.cpu_count() or 1)),
        ("local-inline", MasterSpec("local-inline", "local", threads=1, inline=True)),
        ("local-cluster[2]", MasterSpec("local-cluster[2]", "local-cluster", threads=2)),
        (
            "dask://127.0.0.1:8786",
            MasterSpec("dask://127.0.0.1:8786", "dask", address="tcp://127.0.0.1:8786"),
        ),
        ("tcp://example:1", MasterSpec("tcp://example:1", "dask", address="tcp://example:1")),
    ],
)
def test_parse_master_accepts_documented_forms(url: str, spec: MasterSpec) -> None:
    assert parse_master(url) == spec


@pytest.mark.parametrize(
    "url", ["", "locale", "local[]", "local[0]", "local[-1]", "local[x]", "yarn", "dask://h"]
)
def test_malformed_master_raises_value_error_naming_it(url: str) -> None:
    with pytest.raises(ValueError, match=repr(url).replace("[", r"\[").replace("]", r"\]")):
        parse_master(url)


def test_context_with_bad_master_raises_and_does_not_become_active() -> None:
    with pytest.raises(ValueError, match="'spark://x:7077'"):
        Context("spark://x:7077")
    with Context("local-inline") as sc:  # the failed one did not stay registered
        assert sc.master == "local-inline"


def test_only_one_active_context_and_get_or_create() -> None:
    sc = Context("local[2]", "first")
    try:
        with pytest.raises(ValueError, match="Cannot run multiple Contexts at once"):
            Context("local[1]")
        assert Context.getOrCreate() is sc
    finally:
        sc.stop()
    sc.stop()  # idempotent
    fresh = Context.getOrCreate(Conf().setMaster("local[1]").setAppName("second"))
    try:
        assert fresh is not sc
        assert (fresh.master, fresh.appName) == ("local[1]", "second")
    finally:
        fresh.stop()


def test_stopped_context_refuses_jobs() -> None:
    sc = Context("local[2]")
    rdd = sc.parallelize([1, 2], 2)
    sc.stop()
    with pytest.raises(DStreamStateError, match="stopped"):
        rdd.collect()


def test_conf_has_spark_conf_methods() -> None:
    conf = SparkConf().setMaster("local[2]").setAppName("app").set("k", 5).setIfMissing("k", 6)
    conf.setAll([("a", "1"), ("b", True)])
    assert conf.get("k") == "5"
    assert conf.get("missing") is None
    assert conf.get("missing", "d") == "d"
    assert conf.contains("a") and "b" in conf and not conf.contains("zz")
    assert dict(conf.getAll()) == {
        "spark.master": "local[2]",
        "spark.app.name": "app",
        "k": "5",
        "a": "1",
        "b": "True",
    }
    with Context(conf=conf) as sc:
        assert (sc.master, sc.appName) == ("local[2]", "app")
        got = sc.getConf()
        assert got.get("k") == "5"
        got.set("k", "changed")  # a copy: the context's conf is unchanged
        assert sc.getConf().get("k") == "5"


def test_explicit_arguments_win_over_conf() -> None:
    with Context("local[1]", "explicit", Conf().setMaster("local[2]").setAppName("conf")) as sc:
        assert (sc.master, sc.appName) == ("local[1]", "explicit")


def test_default_parallelism_follows_threads_or_conf() -> None:
    with Context("local[3]") as sc:
        assert sc.defaultParallelism == 3
        assert sc.defaultMinPartitions == 2
    with Context("local[3]", conf=Conf().set("spark.default.parallelism", 5)) as sc:
        assert sc.defaultParallelism == 5
        assert sc.parallelize(range(10)).getNumPartitions() == 5


def test_inline_conf_key_runs_tasks_in_the_calling_thread() -> None:
    with Context("local[4]", conf=Conf().set("dstream.local.inline", "true")) as sc:
        assert isinstance(sc._backend, LocalBackend)
        caller = threading.get_ident()
        idents = sc.parallelize(range(4), 4).mapPartitions(lambda _: [threading.get_ident()]).collect()
        assert idents == [caller] * 4
    with Context("local[2]") as sc:
        idents = sc.parallelize(range(4), 4).mapPartitions(lambda _: [threading.get_ident()]).collect()
        assert caller not in idents


def test_context_cannot_be_pickled_into_a_task() -> None:
    with Context("local-inline") as sc:
        with pytest.raises(DStreamError, match="Context"):
            pickle.dumps(sc)
        rdd = sc.parallelize([1])
        with pytest.raises(TypeError, match="not serializable"):
            rdd.map(lambda x: sc.defaultParallelism).collect()


def test_spark_context_attributes_that_streaming_code_reads() -> None:
    import time

    from dstream.version import __version__

    before_ms = int(time.time() * 1000)
    with Context("local[3]", "attrs") as sc:
        assert sc.version == __version__ and sc.version.count(".") >= 1
        assert (sc.appName, sc.master, sc.defaultParallelism) == ("attrs", "local[3]", 3)
        assert before_ms <= sc.startTime <= int(time.time() * 1000)
        assert isinstance(sc.sparkUser(), str) and sc.sparkUser()


def test_local_properties_are_per_thread_as_in_pyspark() -> None:
    with Context("local-inline") as sc:
        sc.setJobGroup("g1", "nightly", interruptOnCancel=True)
        seen: list[str | None] = []
        other = threading.Thread(target=lambda: seen.append(sc.getLocalProperty("spark.jobGroup.id")))
        other.start()
        other.join(timeout=30)
        assert seen == [None]
        assert (sc.getLocalProperty("spark.jobGroup.id"), sc.getLocalProperty("spark.job.description")) == (
            "g1",
            "nightly",
        )
        sc.setLocalProperty("spark.jobGroup.id", None)
        assert sc.getLocalProperty("spark.jobGroup.id") is None
        assert sc.uiWebUrl is None and sc.pythonVer.count(".") == 1
