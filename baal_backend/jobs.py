"""Training runs in the background: one at a time per project, bursts coalesced.

`request()` returns at once. While a project's run is going, further requests only set a flag;
when the run ends, one more run starts on whatever is stored by then. A burst of N annotations
therefore gives at most two runs, and the last run always sees the newest labels.

This in-process runner is the zero-setup default. Anything with `TrainingRunner`'s methods can
take its place in `Engine` (`wiring` gives it `redis_queue.RedisTrainingQueue` with REDIS_URL).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Protocol

from .logs import request_id

log = logging.getLogger(__name__)


class TrainingRunner(Protocol):
    """What the engine and the HTTP layer ask of whatever runs the training runs."""

    def request(self, project_id: str, sync: bool = False) -> str:
        """Ask for a run (`sync`: refresh the labels from their source first); says what became of it."""

    def is_training(self, project_id: str) -> Optional[bool]:
        """A run going or asked for; None when that cannot be known now."""

    def wait_idle(self, project_id: str, timeout: float) -> bool:
        """Block until the project has no run going or asked for; False on timeout."""

    def busy(self) -> int:
        """Runs going in this process."""

    def queue_depth(self) -> Optional[int]:
        """Runs waiting; None when unknown."""

    def problems(self) -> List[str]:
        """What keeps runs from happening now (`/health`)."""

    def runs(self, project_id: str) -> int:
        """How many runs have started for the project."""

    def shutdown(self, grace: float) -> bool:
        """Take no more requests; False if a run still goes after `grace` seconds."""


@dataclass
class _State:
    running: bool = False
    pending: bool = False
    pending_sync: bool = False
    runs: int = 0


class TrainingCoordinator:
    """Runs `train(project_id, sync)` on a background thread per busy project.

    At most `max_parallel` runs train at the same time (others wait their turn): on a small
    machine parallel runs only slow each other and the predictions down.
    """

    def __init__(self, train: Callable[[str, bool], None], max_parallel: int = 2):
        self._train = train
        self._states: Dict[str, _State] = {}
        self._cond = threading.Condition(threading.RLock())  # re-entered by wait_idle
        self._slots = threading.BoundedSemaphore(max_parallel)
        self._closed = False

    def request(self, project_id: str, sync: bool = False) -> str:
        """Ask for a run; returns "started", "queued" (coalesced into the next run) or
        "stopping" (the process is shutting down; the next start resumes it)."""
        with self._cond:
            if self._closed:
                return "stopping"
            state = self._states.setdefault(project_id, _State())
            state.pending_sync |= sync
            if state.running:
                state.pending = True
                return "queued"
            state.running, state.pending = True, True
        threading.Thread(target=self._loop, args=(project_id,), name=f"train-{project_id}", daemon=True).start()
        return "started"

    def _loop(self, project_id: str) -> None:
        request_id.set(f"train:{project_id}")  # this thread's log lines name their run
        while True:
            with self._cond:
                state = self._states[project_id]
                if not state.pending or self._closed:
                    state.running = state.pending = False
                    self._cond.notify_all()
                    return
                sync, state.pending, state.pending_sync = state.pending_sync, False, False
                state.runs += 1
            with self._slots:
                if self._closed:  # shut down while this run waited for a slot
                    continue
                try:
                    self._train(project_id, sync)
                except Exception:  # a failed run keeps the previous version serving
                    log.exception("training run for project %s failed", project_id)

    def is_training(self, project_id: str) -> bool:
        with self._cond:
            state = self._states.get(project_id)
            return bool(state and state.running)

    def busy(self) -> int:
        """Projects whose run loop is alive (a run going, waiting for a slot, or queued)."""
        with self._cond:
            return sum(s.running for s in self._states.values())

    def queue_depth(self) -> int:
        return self.busy()

    def problems(self) -> List[str]:
        """Nothing outside this process to be unreachable (`/health`)."""
        return []

    def runs(self, project_id: str) -> int:
        """How many runs this process has started for the project."""
        with self._cond:
            state = self._states.get(project_id)
            return state.runs if state else 0

    def wait_idle(self, project_id: str, timeout: float) -> bool:
        """Block until the project has no run going or queued; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self.is_training(project_id), timeout)

    def shutdown(self, grace: float) -> bool:
        """Take no more requests, drop queued runs, wait up to `grace` s for running ones."""
        deadline = time.monotonic() + grace
        with self._cond:
            self._closed = True
            return self._cond.wait_for(lambda: self.busy() == 0, max(0.0, deadline - time.monotonic()))
