"""Shared fixtures: a real mosquitto broker on a free loopback port, a scratch directory."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "tests" / ".cache"  # git-ignored; expensive fixtures (exported ONNX nets, sim videos)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_binary() -> str:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.fail("mosquitto is not installed: run `make test` (it installs it) or apt-get install mosquitto")


@dataclass
class Broker:
    host: str
    port: int
    conf: Path
    process: subprocess.Popen | None = None

    def start(self) -> None:
        """(Re)start the broker on the same port; waits until it accepts connections."""
        self.process = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start on port {self.port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def make_broker(tmp: Path, extra_conf: str = "", port: int | None = None) -> Broker:
    port = port or free_port()
    conf = tmp / f"mosquitto-{port}.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n{extra_conf}", encoding="utf-8"
    )
    return Broker("127.0.0.1", port, conf)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A real mosquitto listening on 127.0.0.1:<free port>, stopped after the test."""
    b = make_broker(tmp_path)
    b.start()
    yield b
    b.stop()
