"""Shuffles: map-side combine into buckets kept where they are made, reduce-side merge.

A map task turns one parent partition into ``n`` buckets, each pickled once (protocol 5). With an
aggregator, records are first combined into one dict per task (one hash per distinct key, not per
record), then split by partition. The reduce task for partition ``r`` receives bucket ``r`` of every
map task in map order and merges them in that order, so its output order is a function of the
input alone (a recomputed batch gives identical output).

A map task's buckets stay in the block manager of the executor that ran it (`ShuffleMapWriter`,
`ShuffleBlockId(shuffle, map, reduce)`); the driver's map-output tracker
(dstream.rdd.map_output_tracker) keeps only where they are. Outputs are dropped when their
ShuffledRDD node is garbage-collected.
"""

from __future__ import annotations

import dis
import operator
import pickle
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, islice
from typing import Any

from dstream.backends.block_manager import BlockManager, ShuffleBlockId
from dstream.errors import DStreamValueError
from dstream.rdd.map_output_tracker import MapStatus
from dstream.rdd.tasks import MapSideWriter

PICKLE_PROTOCOL = 5


def identity(x: Any) -> Any:
    """createCombiner of reduceByKey; recognised by `combine` to skip a call per new key."""
    return x


class Aggregator:
    """PySpark's combineByKey triple: createCombiner, mergeValue, mergeCombiners."""

    def __init__(
        self,
        createCombiner: Callable[[Any], Any],
        mergeValue: Callable[[Any, Any], Any],
        mergeCombiners: Callable[[Any, Any], Any],
    ) -> None:
        self.createCombiner = createCombiner
        self.mergeValue = mergeValue
        self.mergeCombiners = mergeCombiners


class ShuffleDependency:
    """A wide dependency: the parent RDD is hashed (or ranged) into ``num_partitions`` buckets.

    The parent reference is not pickled: reduce tasks read map outputs, never the map side.
    """

    def __init__(
        self,
        rdd: Any,
        shuffle_id: int,
        num_partitions: int,
        partition_func: Callable[[Any], int],
        aggregator: Aggregator | None,
    ) -> None:
        self.rdd = rdd
        self.shuffle_id = shuffle_id
        self.num_partitions = num_partitions
        self.partition_func = partition_func
        self.aggregator = aggregator

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["rdd"] = None
        return state


def _not_a_pair(op: str, what: str) -> DStreamValueError:
    return DStreamValueError(f"{op} expects an RDD of (key, value) pairs; a record is not one: {what}")


_CHUNK_RECORDS = 4096
# Above this share of new keys in a chunk, dict.get beats catching a KeyError per new key (a caught
# KeyError costs ~140 ns more than a miss of get(); a hit by subscript saves ~30 ns over get()).
_NEW_KEY_SHARE_FOR_GET = 1 / 6
_MISSING = object()


def combine(records: Iterable[Any], agg: Aggregator) -> dict[Any, Any]:
    """Map-side combine of (key, value) records into {key: combiner}, in first-seen order.

    The hottest loop of the engine: one dict lookup and one store per record. Records go through in
    chunks; each chunk takes the loop that suits the share of new keys the previous one had (a word
    count: mostly known keys, `_by_lookup`; distinct-like data: mostly new keys, `_by_get`).
    """
    out: dict[Any, Any] = {}
    create, merge = agg.createCombiner, agg.mergeValue
    by_lookup = _add_by_lookup if create is identity and merge is operator.add else _by_lookup
    new_keys_for_get = _CHUNK_RECORDS * _NEW_KEY_SHARE_FOR_GET
    it = iter(records)
    use_get = True  # the dict starts empty: every key is new
    try:
        while (head := next(it, _MISSING)) is not _MISSING:
            before, loop = len(out), _by_get if use_get else by_lookup
            loop((head,), out, create, merge)
            loop(islice(it, _CHUNK_RECORDS - 1), out, create, merge)
            use_get = len(out) - before > new_keys_for_get
    except (TypeError, ValueError) as exc:
        if _failed_unpack_in_a_loop(exc):
            raise _not_a_pair("a shuffle", str(exc)) from exc
        raise  # the user's function (a map before, a merge inside) failed: its own error goes up
    return out


def _failed_unpack_in_a_loop(exc: BaseException) -> bool:
    """Whether ``exc`` is the `for k, v in records` of a combine loop failing on a record.

    The instruction that raised it must be an unpack in one of `_COMBINE_LOOPS`: a builtin called
    from the loop (``int`` as createCombiner, ``float`` in a map before it) raises in the loop's frame
    too, but at another instruction.
    """
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    return code in _COMBINE_LOOPS and code.co_code[tb.tb_lasti] == _UNPACK_SEQUENCE


Create = Callable[[Any], Any]
Merge = Callable[[Any, Any], Any]


def _by_get(records: Iterable[Any], out: dict[Any, Any], create: Create, merge: Merge) -> None:
    get, missing, ident = out.get, _MISSING, create is identity
    for k, v in records:
        c = get(k, missing)
        if c is missing:
            out[k] = v if ident else create(v)
        else:
            out[k] = merge(c, v)


# In the two loops below, a KeyError from the subscript means a new key; one raised by merge()
# (the key is then present) is the user's and goes up.
def _by_lookup(records: Iterable[Any], out: dict[Any, Any], create: Create, merge: Merge) -> None:
    ident = create is identity
    for k, v in records:
        try:
            out[k] = merge(out[k], v)
            continue
        except KeyError:
            if k in out:
                raise
        out[k] = v if ident else create(v)  # outside the handler: its errors are not chained to it


def _add_by_lookup(records: Iterable[Any], out: dict[Any, Any], create: Create, merge: Merge) -> None:
    """reduceByKey(operator.add), PySpark's word count: an inline + saves a call per record."""
    for k, v in records:
        try:
            out[k] = out[k] + v
        except KeyError:
            if k in out:
                raise
            out[k] = v


# An unpack failing in one of these frames is the `for k, v in records` of a loop: a record that is
# not a pair (checking the frame on the error path costs nothing per record, unlike a try per unpack).
_UNPACK_SEQUENCE = dis.opmap["UNPACK_SEQUENCE"]
_COMBINE_LOOPS = frozenset({_by_get.__code__, _by_lookup.__code__, _add_by_lookup.__code__})


def write_buckets(records: Iterable[Any], dep: ShuffleDependency) -> list[bytes]:
    """Compute one map task's output: ``dep.num_partitions`` pickled buckets."""
    n, pf = dep.num_partitions, dep.partition_func
    buckets: list[Any]
    if dep.aggregator is not None:
        combined = combine(records, dep.aggregator)
        if n == 1:
            return [pickle.dumps(combined, PICKLE_PROTOCOL)]
        buckets = [{} for _ in range(n)]
        for k, c in combined.items():
            buckets[pf(k) % n][k] = c
    else:
        buckets = [[] for _ in range(n)]
        for kv in records:
            try:
                key = kv[0]
            except (TypeError, IndexError, KeyError) as exc:  # only the record's own subscript
                raise _not_a_pair("partitionBy", repr(kv)) from exc
            buckets[pf(key) % n].append(kv)
    return [pickle.dumps(b, PICKLE_PROTOCOL) for b in buckets]


def read_buckets(buckets: list[bytes], agg: Aggregator | None) -> Iterator[Any]:
    """Reduce side: merge one partition's buckets (in map order) into (key, value) records."""
    if agg is None:
        return chain.from_iterable(pickle.loads(b) for b in buckets)
    out: dict[Any, Any] = {}
    merge = agg.mergeCombiners
    for b in buckets:
        for k, c in pickle.loads(b).items():
            if k in out:
                out[k] = merge(out[k], c)
            else:
                out[k] = c
    return iter(out.items())


class ShuffleMapWriter(MapSideWriter):
    """A shuffle's map side: one map task's buckets go into its executor's block manager.

    Returns the task's `MapStatus` (its executor and each bucket's size): the only thing that goes
    back to the driver's map-output tracker.
    """

    def __init__(self, dep: ShuffleDependency) -> None:
        self.dep = dep

    def write(self, records: Iterator[Any], map_index: int, block_manager: BlockManager) -> MapStatus:
        buckets = write_buckets(records, self.dep)
        sid = self.dep.shuffle_id
        location = block_manager.executor_id
        for r, bucket in enumerate(buckets):
            location = block_manager.put(ShuffleBlockId(sid, map_index, r), bucket)[0]
        return MapStatus(location, tuple(len(b) for b in buckets))
