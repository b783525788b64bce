"""Real server processes for tests: started in their own process group, stopped by their PID."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, List

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """Start `cmd`, wait until `health` answers and `is_up(response)` holds, or fail with the log."""

    def __init__(self, cmd: List[str], cwd: Path, env: Dict[str, str], log_path: Path, health: str,
                 timeout: float, is_up: Callable[[requests.Response], bool] = lambda r: r.ok, preexec_fn=None):
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=preexec_fn)
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.proc.poll() is None, f"{cmd[0]} exited: {log_path.read_text()[-3000:]}"
            try:
                if is_up(requests.get(health, timeout=2)):
                    return
            except (requests.ConnectionError, requests.Timeout, ValueError):
                pass
            time.sleep(0.3)
        self.stop(signal.SIGKILL)
        raise TimeoutError(f"{cmd[0]} did not come up at {health}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if not self.log.closed:
            self.log.close()
