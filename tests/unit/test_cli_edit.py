"""`pyvirt edit` against a FAKE pyvirtd (fake: the real daemon is written concurrently).

The editor is a real program ($EDITOR, a small shell script), as a user's would be.
"""
from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvirt.cli.main import main
from tests.unit.fakepyvirtd import FakeState, fake_daemon

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def daemon() -> Iterator[tuple[str, FakeState]]:
    with fake_daemon() as (uri, state):
        state.add("demo")
        yield uri, state


def editor(tmp_path: Path, body: str) -> str:
    """An $EDITOR script; it records the file it was given in tmp_path/edited."""
    script = tmp_path / "ed.sh"
    script.write_text(f'#!/bin/sh\necho "$1" >> {tmp_path}/edited\n{body}\n')
    script.chmod(0o755)
    return str(script)


def run(uri: str, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return main(["-c", uri, *argv], stdout=out, stderr=err), out.getvalue(), err.getvalue()


def test_unchanged(daemon, tmp_path, monkeypatch):
    uri, st = daemon
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", editor(tmp_path, "true"))
    assert run(uri, "edit", "demo") == (0, "Domain 'demo' XML configuration not changed.\n\n", "")
    assert [r[0] for r in st.requests] == ["GET"]
    edited = (tmp_path / "edited").read_text().strip()
    assert edited.endswith(".xml") and not os.path.exists(edited)  # the temp copy is removed


def test_edited(daemon, tmp_path, monkeypatch):
    uri, st = daemon
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", editor(tmp_path, "sed -i 's|<vcpu>1<|<vcpu>2<|' \"$1\""))
    assert run(uri, "edit", "demo") == (0, "Domain 'demo' XML configuration edited.\n\n", "")
    assert st.requests[0] == ("GET", "/v1/domains/demo/xml?inactive=1&security_info=1", None)
    assert st.requests[1][:2] == ("PUT", "/v1/domains/demo/xml")
    assert "<vcpu>2</vcpu>" in st.domains["demo"]["xml"]


def test_invalid_without_terminal_fails_and_keeps_old_definition(daemon, tmp_path, monkeypatch):
    uri, st = daemon
    old = st.domains["demo"]["xml"]
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", editor(tmp_path, "sed -i 's|<vcpu>|<bad/><vcpu>|' \"$1\""))
    assert run(uri, "edit", "demo") == (1, "\n", "error: domain XML line 3: mismatched tag\n")
    assert st.domains["demo"]["xml"] == old


def test_editor_failure_is_an_error(daemon, tmp_path, monkeypatch):
    uri, _ = daemon
    monkeypatch.setenv("VISUAL", editor(tmp_path, "exit 4"))
    rc, _, err = run(uri, "edit", "demo")
    assert rc == 1 and "exited with status 4" in err


def test_terminal_asks_try_again_and_reedits(daemon, tmp_path):
    """On a terminal: the error, `Failed. Try again? [y,n,i,f,?]:`, 'y' runs the editor again."""
    uri, st = daemon
    # first run breaks the XML, the second fixes it and sets 3 vcpus
    ed = editor(tmp_path, f"""if [ -e {tmp_path}/once ]; then sed -i 's|<bad/>||; s|<vcpu>1<|<vcpu>3<|' "$1"
else touch {tmp_path}/once; sed -i 's|<vcpu>|<bad/><vcpu>|' "$1"; fi""")
    master, slave = pty.openpty()
    env = {**os.environ, "EDITOR": ed, "PYTHONPATH": str(ROOT / "src")}
    env.pop("VISUAL", None)
    proc = subprocess.Popen([sys.executable, "-m", "pyvirt.cli.main", "-c", uri, "edit", "demo"],
                            stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT)
    os.close(slave)
    try:
        seen = b""
        deadline = time.monotonic() + 20
        while b"Try again? [y,n,i,f,?]: " not in seen and time.monotonic() < deadline:
            seen += os.read(master, 4096)
        os.write(master, b"y\n")
        assert proc.wait(20) == 0
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    text = seen.decode().replace("\r\n", "\n")
    assert "error: domain XML line 3: mismatched tag\n" in text
    assert "Failed. Try again? [y,n,i,f,?]: " in text
    assert "Domain 'demo' XML configuration edited.\n" in text
    assert "<vcpu>3</vcpu>" in st.domains["demo"]["xml"] and "<bad/>" not in st.domains["demo"]["xml"]


def test_dumpxml_asks_for_passwords_only_with_security_info(daemon):
    uri, st = daemon
    code, out, _ = run(uri, "dumpxml", "demo")
    assert code == 0 and out.startswith("<domain")
    code, _, _ = run(uri, "dumpxml", "--inactive", "--security-info", "demo")
    assert code == 0
    assert [r[1] for r in st.requests if r[1].startswith("/v1/domains/demo/xml")] == [
        "/v1/domains/demo/xml", "/v1/domains/demo/xml?inactive=1&security_info=1"]
