"""Child processes of a test (a worker, an API server), each in its own session so that kill -9
reaches all of it; their logs are printed when the test ends."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path


class Processes:
    """Child processes of a test, each in its own session (so kill -9 reaches all of it)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.running: list[tuple[subprocess.Popen, Path]] = []

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = self.directory / f"{name}-{len(self.running)}.log"
        process = subprocess.Popen(
            command,
            env=env,
            cwd=self.directory,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.running.append((process, log))
        return process

    @staticmethod
    def kill(process: subprocess.Popen) -> None:
        """SIGKILL the process and everything in its session."""
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def logs(self) -> str:
        return "\n".join(f"--- {log.name} ---\n{log.read_text()[-3000:]}" for _, log in self.running)

    def stop_all(self) -> None:
        for process, _ in self.running:
            self.kill(process)


def running_in(directory: Path) -> Iterator[Processes]:
    """The body of a test's ``processes`` fixture: kills what is left and prints every log at the end."""
    procs = Processes(directory)
    yield procs
    procs.stop_all()
    print(procs.logs())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for a server a test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
