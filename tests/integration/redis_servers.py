"""Extra Redis servers that fault drills start, stop and restart on their own ports (never the shared one)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
import redis


class RedisServer:
    """A ``redis-server`` on ``port`` whose data survives a stop (``SHUTDOWN SAVE``) and a restart, as a Redis
    that went away for a while and came back would keep it."""

    def __init__(self, port: int, directory: Path) -> None:
        self.port = port
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            pytest.fail("redis-server is not installed")
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.directory), "--dbfilename", "dump.rdb",
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    pytest.fail(f"redis-server did not start on port {self.port}")
                time.sleep(0.05)

    def stop(self) -> None:
        """Shut the server down, saving its data for the next start."""
        if self.process is None or self.process.poll() is not None:
            return
        with suppress(redis.ConnectionError):  # the server closes the connection as it exits
            redis.Redis(port=self.port).shutdown(save=True)
        self.process.wait(timeout=10)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@contextmanager
def redis_server(port: int, directory: Path) -> Iterator[RedisServer]:
    server = RedisServer(port, directory)
    server.start()
    try:
        yield server
    finally:
        server.kill()
