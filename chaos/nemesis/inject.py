"""The nemesis: injects one scheduled fault into a run's drivers and records it in the history.

Each fault is recorded as "fault-start" when it is injected and "fault-end" when it is over from the
nemesis' side (the replacement driver reported "driver-started", the paused driver got SIGCONT, the
receivers were told to restart): the checker measures recovery from there to the next completed
batch (a worker kill ends when the driver reports the nanny's replacement worker, a kill of a
receiver's worker when the driver reports that receiver started again). Every step has a bounded
wait; a replacement that does not start within `start_timeout_s` is recorded in the fault's detail and
the run goes on (the checker's liveness rule judges it).

Faults that change what the driver is started with (a crash point, a storage-fault plan) kill the
running driver first and start the replacement with the fault armed in its environment; so a crash
point is always hit by a driver that recovers (the dangerous moment is inside recovery's re-run or the
batches after it).
"""

from __future__ import annotations

import os
import random
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chaos.driver_process import EXIT_NOT_STARTED
from chaos.nemesis.drivers import Driver, Drivers
from chaos.nemesis.schedule import Step

Record = Callable[..., Any]  # HistoryWriter.record


@dataclass
class Nemesis:
    """Injects `Step`s into `drivers`, recording them with `record`.

    Attributes:
        start_timeout_s: bound on a replacement driver's start.
        crash_wait_s: how long an armed crash point may take to be hit.
        storage_run_s: how long a driver runs under a storage-fault plan (unless it dies sooner).
        zombie_exit_s: how long a woken zombie may take to stop on its own before it is killed.
        checkpoint_wait_s: bound on waiting for the next checkpoint (kill after checkpoint).
        storage_env: the environment that arms a storage-fault plan (None: storage faults are not
            available and are recorded as skipped).
    """

    drivers: Drivers
    record: Record
    rng: random.Random
    start_timeout_s: float = 60.0
    crash_wait_s: float = 10.0
    checkpoint_wait_s: float = 10.0
    storage_run_s: float = 5.0
    zombie_exit_s: float = 30.0
    storage_env: Callable[[dict[str, Any]], dict[str, str]] | None = None

    def inject(self, step: Step) -> dict[str, Any]:
        """Inject one fault; returns its detail as recorded at its end."""
        driver = self.ensure_current()
        detail = dict(step.detail)
        target, pid = driver.name, driver.pid
        if step.kind == "worker-kill":
            victim = self._choose_worker(driver, int(detail.get("worker", 0)))
            if victim is not None:
                detail["address"], detail["worker_pid"] = victim
                target, pid = f"worker {victim[0]}", victim[1]
        elif step.kind == "receiver-worker-kill":
            host = self._choose_receiver(driver, int(detail.get("receiver", 0)))
            if host is not None:
                detail["stream"], detail["address"], detail["worker_pid"] = host
                target, pid = f"worker {host[1]} (receiver {host[0]})", host[2]
        self.record("nemesis", "fault-start", fault=step.kind, target=target, pid=pid, detail=detail)
        outcome = getattr(self, "_" + step.kind.replace("-", "_"))(driver, detail)
        detail.update(outcome)
        current = self.drivers.current
        self.record(
            "nemesis", "fault-end", fault=step.kind, target=target,
            pid=current.pid if current else None, detail=detail,
        )  # fmt: skip
        return detail

    def ensure_current(self) -> Driver:
        """The current driver, restarted first if it died on its own (recorded as "driver-lost")."""
        driver = self.drivers.current
        if driver is None or not driver.alive():
            code = None if driver is None else driver.proc.returncode
            self.record("nemesis", "driver-lost", pid=driver.pid if driver else None, exit=code)
            driver = self._restart()
        return driver

    # -- helpers -------------------------------------------------------------------------------

    def _restart(self, crash_point: str | None = None, env: dict[str, str] | None = None) -> Driver:
        driver = self.drivers.spawn(crash_point=crash_point, extra_env=env)
        self.drivers.current = driver
        self.drivers.wait_started(driver, self.start_timeout_s)
        return driver

    def _kill_and_restart(self, driver: Driver) -> dict[str, Any]:
        self.drivers.kill(driver)
        new = self._restart()
        return {"replacement_started": new.started.is_set()}

    def _workers(self, driver: Driver, after: int = 0) -> dict[str, int] | None:
        """The worker pids by address in `driver`'s last "workers" report after position `after`."""
        reports = [
            e for e in self.drivers.events[after:] if e.get("f") == "workers" and e.get("proc") == driver.name
        ]
        return dict(reports[-1]["pids"]) if reports else None

    def _choose_worker(self, driver: Driver, turn: int) -> tuple[str, int] | None:
        """The schedule's worker (`turn`-th by address, modulo their number) and its pid; None if the
        driver reported no worker within `start_timeout_s`."""
        self.drivers.wait_for(
            lambda _: bool(self._workers(driver)) or not driver.alive(), self.start_timeout_s
        )
        workers = self._workers(driver)
        if not workers:
            return None
        address = sorted(workers)[turn % len(workers)]
        return address, workers[address]

    def _receiver_locations(self, driver: Driver) -> dict[int, str]:
        """Where each receiver of `driver` started last ("receiver-started" location), by stream id."""
        return {
            int(e["stream"]): str(e.get("location"))
            for e in self.drivers.events
            if e.get("f") == "receiver-started" and e.get("proc") == driver.name
        }

    def _choose_receiver(self, driver: Driver, turn: int) -> tuple[int, str, int] | None:
        """The schedule's receiver (`turn`-th by stream id, modulo their number), the worker hosting it
        and that worker's pid; None if `driver` did not report them within `start_timeout_s`.

        Waits until every push receiver the driver reported ("receivers") is placed and has started,
        so the choice depends on the seed, not on which receiver started first.
        """
        chosen: list[tuple[int, str, int]] = []

        def ready(_: Any) -> bool:
            if not driver.alive():
                return True
            report = next(
                (e for e in reversed(self.drivers.events)
                 if e.get("f") == "receivers" and e.get("proc") == driver.name),
                None,
            )  # fmt: skip
            addresses = dict(report["addresses"]) if report else {}
            located, workers = self._receiver_locations(driver), self._workers(driver) or {}
            if not addresses or not all(addresses.values()) or len(located) < len(addresses):
                return False
            stream = sorted(located)[turn % len(located)]
            if located[stream] not in workers:
                return False  # on the driver (no worker to kill), or its worker not reported yet
            chosen[:] = [(stream, located[stream], workers[located[stream]])]
            return True

        self.drivers.wait_for(ready, self.start_timeout_s)
        return chosen[0] if chosen else None

    def _pause_for(self, seconds: float) -> None:
        threading.Event().wait(seconds)  # the fault's own length, not a wait for a condition

    # -- the kinds -----------------------------------------------------------------------------

    def _driver_kill(self, driver: Driver, detail: dict[str, Any]) -> dict[str, Any]:
        if detail.get("when") == "after-checkpoint":
            found = self.drivers.wait_event(driver, "checkpoint-completed", self.drivers.mark(), 30.0)
            detail["checkpoint"] = found.get("batch") if found else None
        else:
            self._pause_for(float(detail.get("delay_s", 0.0)))
        for _ in range(int(detail.get("burst", 1)) - 1):  # quick kills, each while the next starts
            self.drivers.kill(self.drivers.current or driver)
            self.drivers.current = self.drivers.spawn()
            self._pause_for(self.rng.uniform(0.2, 1.0))
        return self._kill_and_restart(self.drivers.current or driver)

    def _kill_during_recovery(self, driver: Driver, detail: dict[str, Any]) -> dict[str, Any]:
        self.drivers.kill(driver)
        mark = self.drivers.mark()
        victim = self.drivers.spawn()
        self.drivers.current = victim
        seen = self.drivers.wait_event(victim, "recovery-started", mark, self.start_timeout_s)
        self._pause_for(float(detail.get("delay_s", 0.0)))
        detail["recovery_done_before_kill"] = any(
            e.get("f") == "recovery-done" and e.get("proc") == victim.name for e in self.drivers.events
        )
        detail["victim_pid"] = victim.pid
        detail["recovery_seen"] = seen is not None
        return self._kill_and_restart(victim)

    def _crashpoint(self, driver: Driver, detail: dict[str, Any]) -> dict[str, Any]:
        self.drivers.kill(driver)
        armed = self._restart(crash_point=str(detail["point"]))
        code = self.drivers.wait_exit(armed, self.crash_wait_s)
        hit = code == -signal.SIGKILL
        if not hit:  # not reached in time: disarm it (another kill), so it cannot fire later unseen
            self.drivers.kill(armed)
        new = self._restart()
        return {"hit": hit, "armed_pid": armed.pid, "replacement_started": new.started.is_set()}

    def _pause(self, driver: Driver, detail: dict[str, Any]) -> dict[str, Any]:
        self.drivers.signal(driver, signal.SIGSTOP)
        self._pause_for(float(detail["pause_s"]))
        return {"resumed": self.drivers.signal(driver, signal.SIGCONT)}

    def _zombie_pause(self, driver: Driver, detail: dict[str, Any]) -> dict[str, Any]:
        """SIGSTOP the driver and start a successor, which waits the zombie's lease out (its
        `dstream.checkpoint.leaseWaitS`) and takes the next epoch; once the successor completed
        "successor_batches" batches, SIGCONT the zombie and wait (bounded) for it to stop on its own.

        Over at that point: a zombie still running after `zombie_exit_s` is killed and recorded as not
        stopped. Both pids are in the detail ("zombie_pid", "successor_pid")."""
        self.drivers.signal(driver, signal.SIGSTOP)
        mark = self.drivers.mark()
        successor = self._restart()
        wanted = int(detail.get("successor_batches", 1))

        def progressed(events: list[dict[str, Any]]) -> bool:
            done = [
                e
                for e in events[mark:]
                if e.get("f") == "batch-completed" and e.get("proc") == successor.name
            ]
            return len(done) >= wanted or not successor.alive()

        made_progress = self.drivers.wait_for(progressed, self.start_timeout_s) and successor.alive()
        self.drivers.signal(driver, signal.SIGCONT)
        code = self.drivers.wait_exit(driver, self.zombie_exit_s)
        if code is None:
            self.drivers.kill(driver)
        return {
            "zombie_pid": driver.pid, "successor_pid": successor.pid,
            "successor_started": successor.started.is_set(), "successor_progressed": made_progress,
            "zombie_exit": code, "zombie_stopped": code is not None,
        }  # fmt: skip

    def _receiver_crash(self, driver: Driver, detail: dict[str, Any]) -> dict[str, Any]:
        mark = self.drivers.mark()
        self.drivers.signal(driver, signal.SIGUSR1)
        restarted = self.drivers.wait_event(driver, "receiver-started", mark, 30.0)
        return {"receiver_restarted": restarted is not None}

    def _worker_kill(self, driver: Driver, detail: dict[str, Any]) -> dict[str, Any]:
        """SIGKILL the chosen worker process; over when the driver reports a full set without it (the
        nanny started a replacement) or after `start_timeout_s`."""
        if "worker_pid" not in detail:
            return {"skipped": "the driver reported no worker processes"}
        pid, mark = int(detail["worker_pid"]), self.drivers.mark()
        before = self._workers(driver) or {}
        try:
            os.kill(pid, signal.SIGKILL)  # the nanny's child, reaped by the nanny
        except ProcessLookupError:
            return {"killed": False}

        def replaced(_: Any) -> bool:
            now = self._workers(driver, mark)
            return not driver.alive() or (
                now is not None and pid not in now.values() and len(now) >= len(before)
            )

        return {"killed": True, "worker_replaced": self.drivers.wait_for(replaced, self.start_timeout_s)}

    def _receiver_worker_kill(self, driver: Driver, detail: dict[str, Any]) -> dict[str, Any]:
        """SIGKILL the worker process hosting the chosen receiver; over when the driver reports that
        receiver started again (on another worker, or the nanny's replacement) or after
        `start_timeout_s`."""
        if "worker_pid" not in detail:
            return {"skipped": "the driver reported no receiver running on a worker"}
        pid, stream, mark = int(detail["worker_pid"]), int(detail["stream"]), self.drivers.mark()
        try:
            os.kill(pid, signal.SIGKILL)  # the nanny's child, reaped by the nanny
        except ProcessLookupError:
            return {"killed": False}
        started: list[dict[str, Any]] = []

        def restarted(events: list[dict[str, Any]]) -> bool:
            started[:] = [
                e for e in events[mark:]
                if e.get("f") == "receiver-started" and e.get("proc") == driver.name
                and e.get("stream") == stream
            ]  # fmt: skip
            return bool(started) or not driver.alive()

        self.drivers.wait_for(restarted, self.start_timeout_s)
        return {
            "killed": True, "receiver_restarted": bool(started),
            "moved_to": started[0].get("location") if started else None,
        }  # fmt: skip

    def _split_brain(self, driver: Driver, detail: dict[str, Any]) -> dict[str, Any]:
        second = self.drivers.spawn()
        code = self.drivers.wait_exit(second, self.start_timeout_s)
        refused = code == EXIT_NOT_STARTED and not second.started.is_set()
        if code is None or second.started.is_set():
            self.drivers.kill(second)
        reason = next(
            (e.get("error") for e in self.drivers.events if e.get("proc") == second.name and "error" in e),
            None,
        )
        return {"second_pid": second.pid, "refused": refused, "exit": code, "reason": reason}

    def _storage(self, driver: Driver, detail: dict[str, Any]) -> dict[str, Any]:
        if self.storage_env is None:
            return {"skipped": "the fault-injecting storage is not available"}
        self.drivers.kill(driver)
        faulty = self._restart(env=self.storage_env(dict(detail["plan"])))
        code = self.drivers.wait_exit(faulty, self.storage_run_s)  # let it run under the faults
        if code is None:
            self.drivers.kill(faulty)
        new = self._restart()
        return {"faulty_pid": faulty.pid, "faulty_exit": code, "replacement_started": new.started.is_set()}
