"""A real ``redis-server`` for tests: on a free loopback port, in a temporary folder, with
nothing saved to disk, stopped after. No fake Redis: the tests that prove a cache is shared
talk to the server sigla's users run.

When ``redis-server`` is not installed the fixtures fail (CI never skips these tests): run
``.ci/run``, which installs it, or install Debian's ``redis-server`` package.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

__all__ = ["RedisServer", "redis_server_binary"]

_READY_WITHIN = 10.0  # seconds for a fresh redis-server to answer PING


def redis_server_binary() -> str:
    """The path of ``redis-server``, or a failed test saying how to get it."""
    found = shutil.which("redis-server")
    if found is None:
        pytest.fail(
            "redis-server is not installed, and the Redis cache tests need a real one: run "
            ".ci/run (it installs it), or `sudo apt-get install -y redis-server` (Debian, "
            "Ubuntu), or `brew install redis` (macOS).",
            pytrace=False,
        )
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(port: int) -> bool:
    """Whether something on ``port`` answers a RESP PING (+PONG, or -NOAUTH: it runs)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64)[:1] in (b"+", b"-")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process; :attr:`url` reaches database 0 (with the password)."""

    def __init__(self, password: str | None = None) -> None:
        self.password = password
        self.port = 0
        self.folder = ""
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> RedisServer:
        binary = redis_server_binary()
        self.folder = tempfile.mkdtemp(prefix="sigla-redis-")
        for _ in range(5):  # another process may take the free port before redis binds it
            self.port = _free_port()
            args = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
            args += ["--save", "", "--appendonly", "no", "--dir", self.folder]
            if self.password:
                args += ["--requirepass", self.password]
            log = open(os.path.join(self.folder, "log"), "wb")  # noqa: SIM115 (the child's)
            with log:
                self._process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + _READY_WITHIN
            while time.monotonic() < deadline and self.running:
                if _answers(self.port):
                    return self
                time.sleep(0.02)
            self.stop()
        with open(os.path.join(self.folder, "log"), encoding="utf-8", errors="replace") as file:
            said = file.read()[-2000:]
        pytest.fail(f"redis-server did not start on a free loopback port:\n{said}", pytrace=False)

    def stop(self) -> None:
        """Stop the server (a test may do it to take the store away mid-run)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def close(self) -> None:
        self.stop()
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)
