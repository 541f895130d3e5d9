"""`pyvirt console` against a FAKE console websocket (websockets' own sync server on a unix
socket; fake because the real daemon is written concurrently). Runs the real CLI in a
subprocess: with a pipe as stdin, and on a pseudo-terminal where Ctrl-] detaches."""
from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.sync.server import ServerConnection, unix_serve

from tests.openapi_check import Contract

ROOT = Path(__file__).resolve().parents[2]


class ConsoleFake:
    """Greets as docs/openapi.yaml says the daemon does (checked: ``violations``), then echoes."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.received = b""
        self.violations: list[str] = []

    def greet(self, ws: ServerConnection, path: str, frame: dict[str, object]) -> None:
        route, _, query = path.partition("?")
        self.violations += Contract.load().check({"method": "GET", "path": route, "query": query, "status": 101,
                                                  "content_type": "", "frame": frame}, refused_requests_ok=False)
        ws.send(json.dumps(frame))

    def handler(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request else ""
        self.paths.append(path)
        if not path.startswith("/v1/domains/demo/console"):
            message = "domain 'ghost' is not running; start it first with `pyvirt start ghost`"
            self.greet(ws, path, {"error": {"code": "operation-invalid", "message": message}})
            ws.close()
            return
        self.greet(ws, path, {"connected": "demo"})
        ws.send(b"login: ")
        for frame in ws:
            data = frame if isinstance(frame, bytes) else frame.encode()
            self.received += data
            ws.send(b"ECHO:" + data)


@pytest.fixture
def console() -> Iterator[tuple[str, ConsoleFake]]:
    tmp = tempfile.mkdtemp(prefix="pvcons", dir="/tmp")
    path = os.path.join(tmp, "pyvirtd.sock")
    fake = ConsoleFake()
    server = unix_serve(fake.handler, path)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"unix://{path}", fake
    finally:
        server.shutdown()
        thread.join(5)
        shutil.rmtree(tmp, ignore_errors=True)
    assert fake.violations == [], "the fake console departed from docs/openapi.yaml"


def cli(uri: str, *argv: str) -> list[str]:
    return [sys.executable, "-m", "pyvirt.cli.main", "-c", uri, *argv]


ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYVIRT_CONSOLE_LINGER": "0.3"}


def test_pipe_mode_forwards_stdin_and_prints_output(console):
    uri, fake = console
    done = subprocess.run(cli(uri, "console", "demo"), input=b"hello\n", capture_output=True, env=ENV, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (b"Connected to domain 'demo'\nEscape character is ^] (Ctrl + ])\n"
                           b"login: ECHO:hello\n\n")
    assert fake.received == b"hello\n"
    assert fake.paths == ["/v1/domains/demo/console"]


def test_force_and_refusal(console):
    uri, fake = console
    done = subprocess.run(cli(uri, "console", "demo", "--force"), input=b"", capture_output=True, env=ENV, timeout=30)
    assert done.returncode == 0
    assert fake.paths == ["/v1/domains/demo/console?force=1"]
    done = subprocess.run(cli(uri, "console", "ghost"), input=b"", capture_output=True, env=ENV, timeout=30)
    assert done.returncode == 1
    assert done.stderr == b"error: domain 'ghost' is not running; start it first with `pyvirt start ghost`\n"
    assert b"Connected" not in done.stdout


def test_terminal_mode_ctrl_bracket_detaches_and_restores_the_terminal(console):
    uri, fake = console
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    proc = subprocess.Popen(cli(uri, "console", "demo"), stdin=slave, stdout=slave, stderr=slave, env=ENV)
    try:
        seen = b""
        deadline = time.monotonic() + 20
        while b"login: " not in seen and time.monotonic() < deadline:
            seen += os.read(master, 4096)
        assert termios.tcgetattr(slave)[3] & termios.ECHO == 0  # raw mode while attached
        os.write(master, b"ls")
        while b"ECHO:ls" not in seen and time.monotonic() < deadline:
            seen += os.read(master, 4096)
        os.write(master, b"x\x1d")  # bytes before Ctrl-] still go to the guest
        assert proc.wait(20) == 0
        assert termios.tcgetattr(slave) == before
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)
    assert b"Escape character is ^] (Ctrl + ])" in seen
    deadline = time.monotonic() + 5
    while fake.received != b"lsx" and time.monotonic() < deadline:
        time.sleep(0.02)  # the server thread may still be handling the last frame
    assert fake.received == b"lsx"
