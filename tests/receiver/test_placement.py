"""Where a receiver runs on a Dask cluster (dstream.receiver.placement): the pure decision, exhaustively."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dstream.receiver.placement import choose_worker, host_of, matches

HOSTS = ["127.0.0.1", "10.0.0.2"]
ADDRESSES = [f"tcp://{h}:{p}" for h in HOSTS for p in (4000, 4001)]

workers = st.lists(st.sampled_from(ADDRESSES), unique=True)
preferences = st.none() | st.sampled_from([*ADDRESSES, *HOSTS, "tcp://10.9.9.9:1"])
loads = st.dictionaries(st.sampled_from(ADDRESSES), st.integers(0, 3))


@given(workers, preferences, st.none() | st.sampled_from(ADDRESSES), loads)
def test_the_choice_follows_the_rules(
    alive: list[str], preferred: str | None, previous: str | None, load: dict[str, int]
) -> None:
    chosen = choose_worker(alive, preferred, previous, load)
    if not alive:
        assert chosen is None
        return
    assert chosen in alive
    if previous in alive:
        assert chosen == previous  # where its receiver WAL is open for writing
        return
    wanted = [w for w in alive if preferred and matches(w, preferred)]
    pool = wanted or alive
    assert chosen in pool
    assert load.get(chosen, 0) == min(load.get(w, 0) for w in pool)  # least loaded among them


def test_two_receivers_on_two_idle_workers_take_one_each() -> None:
    alive = ADDRESSES[:2]
    first = choose_worker(alive, None, None, {})
    assert first is not None
    assert choose_worker(alive, None, None, {first: 1}) != first


def test_a_preferred_host_or_address_is_honoured_and_an_absent_one_ignored() -> None:
    assert choose_worker(ADDRESSES, "10.0.0.2", None, {}) == "tcp://10.0.0.2:4000"
    assert choose_worker(ADDRESSES, "tcp://10.0.0.2:4001", None, {}) == "tcp://10.0.0.2:4001"
    assert choose_worker(ADDRESSES[:2], "10.0.0.2", None, {ADDRESSES[0]: 1}) == ADDRESSES[1]


def test_host_of_reads_dask_addresses() -> None:
    assert host_of("tcp://127.0.0.1:4000") == "127.0.0.1"
    assert host_of("127.0.0.1") == "127.0.0.1"
    assert host_of("tcp://[::1]:4000") == "::1"
