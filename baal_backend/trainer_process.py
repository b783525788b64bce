"""Head training in a child process of its own, away from the server's request threads.

A head's training loop is thousands of tiny torch operations, and each one hands Python's GIL
back and forth. In a thread beside busy request threads every handover can wait a whole switch
interval (5 ms): a 0.4 s fit took 177 s next to one Python-busy thread. A child process has its
own GIL, and its one torch thread leaves the other core to the requests
(`benchmarks/contention.py` measures both).

One long-lived child per server process (spawned on first use, shared by every project and
engine), fed NumPy arrays and returning NumPy arrays. If it dies, the run fails (and is recorded)
and the next run starts a fresh child.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Optional

log = logging.getLogger(__name__)

_pool: Optional[ProcessPoolExecutor] = None
_lock = threading.Lock()


def _init_child() -> None:
    """One torch thread; and the server's signals are not for the child: on SIGTERM the server
    decides whether a run may finish, and the child leaves as soon as the server is gone (its
    work queue never reports the server's death: the child holds both of its ends)."""
    import torch

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def _get_pool() -> ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_init_child)
        return _pool


def start() -> None:
    """Start the child now, from the main thread, with SIGTERM and SIGINT ignored while it is
    created (an ignored signal stays ignored in the child from its first instruction): a stop
    signal sent to the whole process group then never kills a run halfway, and the first run
    does not wait for the child's imports."""
    old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        _get_pool().submit(int)  # the child process is created here
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def run(fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)` in the training process (a picklable module-level function)."""
    global _pool
    pool = _get_pool()
    try:
        return pool.submit(fn, *args).result()
    except BrokenProcessPool:
        log.error("the training process died; the next run starts a new one")
        with _lock:
            if _pool is pool:
                _pool = None
        raise


def shutdown(wait: bool = True) -> None:
    """Stop the child; `wait` for it to leave (when no run is going: a clean exit)."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=wait, cancel_futures=True)
