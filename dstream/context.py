"""The engine context (PySpark's SparkContext) and its configuration (SparkConf).

One active Context per process, as in PySpark: a second one raises until the first is stopped;
`Context.getOrCreate()` returns the active one. The context owns the backend chosen by the master
URL (and with it the block managers where partitions and shuffle outputs live), the DAG scheduler,
the driver's block-location table and map-output tracker (ids and locations only), the checkpoint
directory, and the shared variables: broadcasts (dstream.broadcast) and accumulators
(dstream.accumulators).

Inline mode (deterministic tests): master ``local-inline``, or conf ``dstream.local.inline=true``
with any ``local`` master, runs every task in the calling thread, in partition order, still
pickling each task and result.
"""

from __future__ import annotations

import getpass
import itertools
import logging
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from checkpoint import rdd_data
from checkpoint.layout import rdd_of_run_dir
from checkpoint.location import absolute_url
from dstream.accumulators import Accumulator, AccumulatorParam, AccumulatorRegistry, default_param
from dstream.backends import create_backend
from dstream.backends.base import ExecutionBackend
from dstream.backends.executor_env import ExecutorEnv
from dstream.broadcast import Broadcast, registry_of
from dstream.config import EngineConfig
from dstream.errors import DStreamStateError, DStreamValueError
from dstream.master import parse_master
from dstream.rdd import file_io
from dstream.rdd.block_recovery import RecoveryListener
from dstream.rdd.checkpointing import CheckpointNode
from dstream.rdd.dag_scheduler import DAGScheduler
from dstream.rdd.map_output_tracker import MapOutputTracker
from dstream.rdd.nodes import BlockNode
from dstream.rdd.rdd import RDD
from dstream.rdd.storage import BlockLocations
from dstream.rdd.transforms import check_num_partitions, union_of
from dstream.version import __version__

DEFAULT_MASTER = "local[*]"


class Conf:
    """String key/value configuration with SparkConf's method names; setters return self."""

    def __init__(self, loadDefaults: bool = True, values: dict[str, str] | None = None) -> None:
        self._values: dict[str, str] = dict(values or {})

    def set(self, key: str, value: Any) -> Conf:
        self._values[key] = str(value)
        return self

    def setIfMissing(self, key: str, value: Any) -> Conf:
        self._values.setdefault(key, str(value))
        return self

    def setMaster(self, value: str) -> Conf:
        return self.set("spark.master", value)

    def setAppName(self, value: str) -> Conf:
        return self.set("spark.app.name", value)

    def setAll(self, pairs: Iterable[tuple[str, Any]]) -> Conf:
        for k, v in pairs:
            self.set(k, v)
        return self

    def get(self, key: str, defaultValue: str | None = None) -> str | None:
        return self._values.get(key, defaultValue)

    def getAll(self) -> list[tuple[str, str]]:
        return list(self._values.items())

    def contains(self, key: str) -> bool:
        return key in self._values

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def keys(self) -> Iterator[str]:
        return iter(self._values)

    def toDebugString(self) -> str:
        return "\n".join(f"{k}={v}" for k, v in self._values.items())

    def copy(self) -> Conf:
        return Conf(values=self._values)


SparkConf = Conf


class Context:
    """Entry point of the batch engine: creates RDDs and runs their jobs on a backend."""

    _active: Context | None = None
    _active_lock = threading.RLock()

    def __init__(
        self, master: str | None = None, appName: str | None = None, conf: Conf | None = None
    ) -> None:
        with Context._active_lock:
            if Context._active is not None:
                raise DStreamValueError(
                    f"Cannot run multiple Contexts at once; existing Context(app={Context._active.appName},"
                    f" master={Context._active.master}); stop() it first or use Context.getOrCreate()"
                )
            self._conf = conf.copy() if conf is not None else Conf()
            self.master: str = master or self._conf.get("spark.master") or DEFAULT_MASTER
            self.appName: str = appName or self._conf.get("spark.app.name") or "dstream"
            self._conf.set("spark.master", self.master).set("spark.app.name", self.appName)
            spec = parse_master(self.master)
            self.engine_config = EngineConfig.from_conf(dict(self._conf.getAll()))
            self._backend = create_backend(spec, self.engine_config)
            self._block_locations = BlockLocations(self._backend.block_manager)
            self._map_outputs = MapOutputTracker(self._backend.block_manager)
            self._accumulators = AccumulatorRegistry()
            self._scheduler = DAGScheduler(
                self._backend, self._block_locations, self._map_outputs, self._accumulators
            )
            self._backend.add_executor_listener(self._scheduler.executor_lost, self._scheduler.executor_added)
            self.startTime: int = int(time.time() * 1000)
            self.sparkHome: str | None = None
            self.environment: dict[str, str] = {}
            self._thread_local = threading.local()
            self._rdd_ids = itertools.count()
            self._shuffle_ids = itertools.count()
            self._run_uuid = uuid.uuid4().hex
            self._checkpoint_dir: str | None = None
            self._checkpoint_storage_options: dict[str, Any] = {}
            self._stopped = False
            Context._active = self

    # -- lifecycle ---------------------------------------------------------------------------------
    @classmethod
    def getOrCreate(cls, conf: Conf | None = None) -> Context:
        """The active Context, or a new one built from ``conf``."""
        with cls._active_lock:
            return cls._active if cls._active is not None else cls(conf=conf)

    def stop(self) -> None:
        """Stop the backend and drop all blocks and shuffle outputs. Idempotent."""
        with Context._active_lock:
            if self._stopped:
                return
            self._stopped = True
            self._scheduler.stop()
            self._block_locations.clear()
            self._map_outputs.clear()
            self._backend.stop()
            if Context._active is self:
                Context._active = None

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __getstate__(self) -> dict[str, Any]:
        raise DStreamStateError(
            "It appears that you are attempting to reference the Context from a transformation or an"
            " action: the Context can only be used on the driver, not in code that runs in tasks"
        )

    def __repr__(self) -> str:
        return f"<Context master={self.master} appName={self.appName}>"

    @property
    def backend(self) -> ExecutionBackend:
        """The execution backend (receivers ask it where they run: driver threads or Dask workers)."""
        return self._backend

    @property
    def executor_env(self) -> ExecutorEnv:
        """The environment of the executor in the driver process (driver-hosted receivers use it)."""
        return self._backend.executor_env

    def worker_processes(self) -> dict[str, int]:
        """The process id of every worker process, by worker address; empty when tasks run in the
        driver's process (``local[*]``). Chaos runs kill them."""
        get = getattr(self._backend, "worker_processes", None)
        pids: dict[str, int] = get() if get is not None else {}
        return pids

    def add_block_recovery_listener(self, listener: RecoveryListener) -> None:
        """Call `listener(BlockRecovery)` when a lost block is recomputed or read from the WAL."""
        self._scheduler.add_recovery_listener(listener)

    def remove_block_recovery_listener(self, listener: RecoveryListener) -> None:
        self._scheduler.remove_recovery_listener(listener)

    def getConf(self) -> Conf:
        """A copy of the configuration."""
        return self._conf.copy()

    @property
    def defaultParallelism(self) -> int:
        """``spark.default.parallelism`` if set, else the backend's (threads for local[N])."""
        value = self.engine_config.default_parallelism
        return value if value is not None else self._backend.default_parallelism

    @property
    def defaultMinPartitions(self) -> int:
        return min(self.defaultParallelism, 2)

    @property
    def applicationId(self) -> str:
        return f"local-{self._run_uuid}"

    @property
    def version(self) -> str:
        """The version of the engine this program runs on (PySpark: the Spark version)."""
        return __version__

    def sparkUser(self) -> str:
        """The user running this program."""
        return getpass.getuser()

    @property
    def uiWebUrl(self) -> str | None:
        """The Dask dashboard's URL (``dstream.dask.dashboard=true``), else None (no web UI)."""
        link = getattr(self._backend, "dashboard_link", None)
        return link if isinstance(link, str) else None

    @property
    def pythonExec(self) -> str:
        """The Python interpreter tasks run in (the driver's, for the local backend)."""
        return sys.executable

    @property
    def pythonVer(self) -> str:
        """``major.minor`` of the Python that runs tasks."""
        return f"{sys.version_info.major}.{sys.version_info.minor}"

    def setLocalProperty(self, key: str, value: str | None) -> None:
        """Set a property of jobs started from this thread (None removes it), as in PySpark."""
        properties = self._local_properties()
        if value is None:
            properties.pop(key, None)
        else:
            properties[key] = str(value)

    def getLocalProperty(self, key: str) -> str | None:
        """A property set with setLocalProperty in this thread, or None."""
        return self._local_properties().get(key)

    def setJobDescription(self, value: str) -> None:
        """Describe the jobs started from this thread (``spark.job.description``)."""
        self.setLocalProperty("spark.job.description", value)

    def setJobGroup(self, groupId: str, description: str, interruptOnCancel: bool = False) -> None:
        """Group the jobs started from this thread (the properties PySpark sets; no cancellation here)."""
        self.setLocalProperty("spark.jobGroup.id", groupId)
        self.setLocalProperty("spark.job.description", description)
        self.setLocalProperty("spark.job.interruptOnCancel", str(interruptOnCancel).lower())

    def _local_properties(self) -> dict[str, str]:
        properties: dict[str, str] | None = getattr(self._thread_local, "properties", None)
        if properties is None:
            properties = self._thread_local.properties = {}
        return properties

    def setLogLevel(self, logLevel: str) -> None:
        logging.getLogger("dstream").setLevel(logLevel.upper())

    def _check_running(self) -> None:
        if self._stopped:
            raise DStreamStateError("this Context has been stopped; create a new one")

    def _new_rdd_id(self) -> int:
        return next(self._rdd_ids)

    def _new_shuffle_id(self) -> int:
        return next(self._shuffle_ids)

    # -- shared variables --------------------------------------------------------------------------
    def broadcast(self, value: Any) -> Broadcast[Any]:
        """A read-only value pickled once here and loaded once per worker (dstream.broadcast).

        Raises:
            TypeError: ``value`` cannot be pickled.
        """
        self._check_running()
        return Broadcast._create(value, registry_of(self.executor_env))

    def accumulator(self, value: Any, accum_param: AccumulatorParam[Any] | None = None) -> Accumulator[Any]:
        """A value tasks add to and the driver reads; at-least-once across re-runs (dstream.accumulators).

        ``accum_param`` defaults to adding ints, floats or complex numbers, by the type of ``value``.

        Raises:
            TypeError: no default param for ``value``'s type and none given.
        """
        param = default_param(value) if accum_param is None else accum_param
        return self._accumulators.create(value, param)

    # -- creating RDDs -----------------------------------------------------------------------------
    def parallelize(self, c: Iterable[Any], numSlices: int | None = None) -> RDD[Any]:
        """Distribute a local collection into ``numSlices`` partitions (defaultParallelism)."""
        n = check_num_partitions(self.defaultParallelism if numSlices is None else numSlices, "numSlices")
        data = list(c)
        size = len(data)
        return self._rdd_from_partitions([data[i * size // n : (i + 1) * size // n] for i in range(n)])

    def range(
        self, start: int, end: int | None = None, step: int = 1, numSlices: int | None = None
    ) -> RDD[Any]:
        if end is None:
            start, end = 0, start
        return self.parallelize(range(start, end, step), numSlices)

    def makeRDD(self, seq: Iterable[tuple[Any, Sequence[str]]]) -> RDD[Any]:
        """One partition per ``(element, locations)`` pair, preferring to run on those executors.

        Spark's Scala ``SparkContext.makeRDD`` with location preferences (PySpark has no equivalent):
        partition i holds element i alone, and its tasks prefer the executors ``locations`` names, as
        a block RDD's task prefers the worker holding its received block (dstream.rdd.locality).
        A preference only: a dead or busy executor never keeps a task from running elsewhere.

        Raises:
            DStreamValueError: an item is not an ``(element, locations)`` pair, or a location is not a
                string.
        """
        elements: list[list[Any]] = []
        locations: list[tuple[str, ...]] = []
        for item in seq:
            if not (isinstance(item, tuple) and len(item) == 2) or isinstance(item[1], str):
                raise DStreamValueError(
                    f"makeRDD takes (element, locations) pairs with a sequence of executor ids; got {item!r}"
                )
            where = tuple(item[1])
            bad = [w for w in where if not isinstance(w, str)]
            if bad:
                raise DStreamValueError(f"makeRDD locations must be executor ids (str); got {bad[0]!r}")
            elements.append([item[0]])
            locations.append(where)
        return self._rdd_from_partitions(elements, locations)

    def _rdd_from_partitions(
        self, partitions: Sequence[list[Any]], locations: Sequence[tuple[str, ...]] = ()
    ) -> RDD[Any]:
        """An RDD whose partition i is the list ``partitions[i]`` (held, not copied), preferring
        ``locations[i]`` when given.

        Raises:
            TaskNotSerializableError: a record cannot be pickled, so it could not reach a worker.
        """
        self._check_running()
        rdd: RDD[Any] = RDD(self, BlockNode(len(partitions), locations))
        rdd._hold_blocks(list(partitions), locations)
        return rdd

    def emptyRDD(self) -> RDD[Any]:
        """An RDD with no partitions."""
        return self._rdd_from_partitions([])

    def union(self, rdds: Sequence[RDD[Any]]) -> RDD[Any]:
        """The concatenation of the partitions of ``rdds``."""
        rdds = list(rdds)
        if not rdds:
            raise DStreamValueError("union needs at least one RDD, got an empty list")
        return union_of(rdds)

    def textFile(
        self, name: str, minPartitions: int | None = None, use_unicode: bool = True, **storage_options: Any
    ) -> RDD[Any]:
        """Lines of a text file, a directory of part files or a glob (any fsspec URL)."""
        n = check_num_partitions(
            self.defaultMinPartitions if minPartitions is None else minPartitions, "minPartitions"
        )
        return file_io.text_file(self, name, n, use_unicode, storage_options)

    def pickleFile(self, name: str, minPartitions: int | None = None, **storage_options: Any) -> RDD[Any]:
        """Records written by RDD.saveAsPickleFile (one partition per part file).

        The files are unpickled, with no signature (as in PySpark): reading files that someone else
        can write runs their code. Read only files you trust.
        """
        return file_io.pickle_file(self, name, storage_options)

    def _checkpoint_rdd(self, dir_url: str, storage_options: dict[str, Any] | None = None) -> RDD[Any]:
        """An RDD reading a committed RDD checkpoint directory (Spark's sc.checkpointFile)."""
        options = self._checkpoint_storage_options if storage_options is None else storage_options
        n = rdd_data.committed_partitions(dir_url, storage_options=options)
        rdd: RDD[Any] = RDD(self, CheckpointNode(dir_url, n, options))
        rdd._checkpoint_dir, rdd.is_checkpointed = dir_url, True
        return rdd

    # -- jobs and checkpoints ------------------------------------------------------------------------
    def runJob(
        self,
        rdd: RDD[Any],
        partitionFunc: Any,
        partitions: Sequence[int] | None = None,
        allowLocal: bool = False,
    ) -> list[Any]:
        """Run ``partitionFunc(iterator)`` on the given partitions; concatenate the results."""
        results = rdd._run_job(lambda it: list(partitionFunc(it)), partitions, "runJob")
        return list(itertools.chain.from_iterable(results))

    def setCheckpointDir(self, dirName: str, storage_options: dict[str, Any] | None = None) -> None:
        """Where rdd.checkpoint() writes: ``<dirName>/rdd/<run uuid>/rdd-<id>`` (any fsspec URL)."""
        if not isinstance(dirName, str) or not dirName:
            raise DStreamValueError(f"checkpoint dir must be a non-empty path or URL, got {dirName!r}")
        url = absolute_url(dirName).rstrip("/")
        self.check_reachable_by_workers(url, "checkpoint directory")
        self._checkpoint_dir = url
        self._checkpoint_storage_options = dict(storage_options or {})

    def check_reachable_by_workers(self, url: str, what: str) -> None:
        """Refuse a location tasks would use but this backend's workers cannot reach.

        Raises:
            DStreamValueError: e.g. a local path with a ``dask://`` master (the message says why).
        """
        self._backend.check_reachable_by_workers(url, what)

    def getCheckpointDir(self) -> str | None:
        return self._checkpoint_dir

    def _rdd_checkpoint_url(self, rdd_id: int) -> str:
        if self._checkpoint_dir is None:
            raise DStreamStateError("Checkpoint directory has not been set in the Context")
        return rdd_of_run_dir(self._checkpoint_dir, self._run_uuid, rdd_id)

    @property
    def run_id(self) -> str:
        """Names this Context's `rdd/<run id>/` directory of rdd.checkpoint() files."""
        return self._run_uuid
