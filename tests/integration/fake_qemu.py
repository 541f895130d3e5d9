"""A stand-in for qemu-system-x86_64 that fails a start at one chosen step (standard library only).

Run as ``fake_qemu.py MODE QEMU-ARGS...`` (a wrapper script placed as the domain's <emulator>
adds MODE). It reads the QMP socket path and the pidfile from the argv pyvirt built, writes
the pidfile as QEMU does, and then, by MODE:

- ``exit-early``: prints its reason and exits 1 before the monitor socket exists;
- ``exit-after-bind``: binds and listens on the monitor socket, waits for the daemon's
  readiness probe to connect, then prints its reason and exits 1 (the socket file stays);
- ``reset-handshake``: as real QEMU with a bad device: the monitor's connection waits in the
  listen backlog and is reset when the fake prints its reason and exits 1;
- ``exit-at-cont``: speaks QMP (greeting, qmp_capabilities, set_link) until ``cont``,
  then prints its reason and exits 1 without answering;
- ``hang-before-monitor``: never opens the monitor (sleeps);
- ``hang-handshake``: takes monitor connections and never greets.

Each step waits for the daemon's next move (a connection, a command), so the path a test
takes does not depend on timing. What it prints is REASONS[MODE], a line in QEMU's format.
"""
from __future__ import annotations

import json
import os
import select
import socket
import sys
import time

REASONS = {
    "exit-early": "qemu-system-x86_64: -device fake-nic: 'fake-nic' is not a valid device model name",
    "exit-after-bind": "qemu-system-x86_64: -blockdev {\"node-name\":\"libvirt-1-format\",\"driver\":\"qcow2\","
                       "\"file\":\"libvirt-1-storage\"}: Image is not in qcow2 format",
    "reset-handshake": "qemu-system-x86_64: Property 'Nehalem-IBRS-x86_64-cpu.fakeflag' not found",
    "exit-at-cont": "qemu-system-x86_64: fake: vCPU 0 failed to start: Input/output error",
    "hang-before-monitor": "qemu-system-x86_64: fake: waiting forever before the monitor",
    "hang-handshake": "qemu-system-x86_64: fake: waiting forever in the handshake",
}
GREETING = {"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}, "package": "fake"},
                    "capabilities": []}}


def option(argv: list[str], name: str) -> str | None:
    for i, word in enumerate(argv[:-1]):
        if word == name:
            return argv[i + 1]
    return None


def qmp_path(argv: list[str]) -> str:
    """The path of the -chardev with id=charmonitor (the QMP socket pyvirt waits for)."""
    for i, word in enumerate(argv[:-1]):
        if word == "-chardev" and "id=charmonitor" in argv[i + 1]:
            props = dict(p.split("=", 1) for p in argv[i + 1].split(",")[1:] if "=" in p)
            return props["path"]
    raise SystemExit("fake qemu: no -chardev id=charmonitor in the argv")


def say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def die(mode: str) -> None:
    say(REASONS[mode])
    os._exit(1)


def send(conn: socket.socket, obj: dict[str, object]) -> None:
    conn.sendall(json.dumps(obj).encode() + b"\r\n")


def commands(conn: socket.socket):  # type: ignore[no-untyped-def]
    """The JSON objects the client sends (QMP needs no newline between them)."""
    decoder = json.JSONDecoder()
    buf = ""
    while True:
        data = conn.recv(4096)
        if not data:
            return
        buf += data.decode()
        while buf.strip():
            try:
                msg, end = decoder.raw_decode(buf.lstrip())
            except ValueError:
                break  # an object cut in two: wait for the rest
            buf = buf.lstrip()[end:]
            yield msg


def main() -> None:
    mode, argv = sys.argv[1], sys.argv[2:]
    if mode not in REASONS:
        raise SystemExit(f"fake qemu: unknown mode {mode}")
    pidfile = option(argv, "-pidfile")
    if pidfile:
        with open(pidfile, "w") as f:
            f.write(f"{os.getpid()}\n")
    say("fake qemu: starting")
    if mode == "exit-early":
        die(mode)
    if mode.startswith("hang-"):
        say(REASONS[mode])  # what a start that times out must still show: QEMU's last words
    if mode == "hang-before-monitor":
        while True:
            time.sleep(60)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(qmp_path(argv))
    server.listen(4)
    probe, _ = server.accept()  # the daemon's readiness probe: connects and closes at once
    probe.close()
    if mode == "exit-after-bind":
        die(mode)
    if mode == "reset-handshake":
        select.select([server], [], [])  # the monitor's connection waits in the backlog, never accepted:
        die(mode)  # exiting resets it, as real QEMU does when it fails while parsing its devices
    conn, _ = server.accept()  # the daemon's monitor connection
    if mode == "hang-handshake":
        while True:
            time.sleep(60)
    send(conn, GREETING)
    for msg in commands(conn):
        if msg.get("execute") == "cont":
            die(mode)
        reply: dict[str, object] = {"return": {}}
        if "id" in msg:
            reply["id"] = msg["id"]
        send(conn, reply)
    die(mode)


if __name__ == "__main__":
    main()
