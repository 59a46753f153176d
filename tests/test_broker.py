"""The embedded broker command: it stops tansu however it is stopped itself."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import pytest
from streaming import wait_for

from monitor.commands.broker import free_port


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_no_tansu_outlives_the_broker_command(stop: signal.Signals) -> None:
    port = free_port()
    # Started as a script starts a job in the background: SIGINT arrives ignored.
    def ignore_interrupts() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    command = subprocess.Popen([sys.executable, "-m", "monitor", "broker", "--port", str(port)],
                               stdout=subprocess.DEVNULL, preexec_fn=ignore_interrupts)
    try:
        wait_for(lambda: listening(port), 30, "tansu listening")
        command.send_signal(stop)
        command.wait(timeout=15)
        wait_for(lambda: not listening(port), 15, "tansu stopped")
    finally:
        command.kill()
