"""pyvirt+ssh://[USER@]HOST[:PORT]/: the remote daemon's unix socket through an OpenSSH tunnel.

One `ssh -N -L LOCAL.sock:REMOTE.sock` per connection: OpenSSH's own
stream-local forwarding carries each HTTP connection (event streams, uploads,
the console's websocket) to the remote socket as a channel of one ssh session.
The remote host needs nothing but sshd (no helper, no listener); the user's ssh
keys, agent, ~/.ssh/config and known_hosts apply as for any ssh. The remote
socket is root-only, so the remote user must be root there (as with libvirt).

The local socket lives in a private directory (0700) and goes with the tunnel
when the connection closes; the ssh process dies with its parent (PDEATHSIG)
even when the client is killed. Imported only for ssh URIs.
"""
from __future__ import annotations

import _socket
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from ..errors import ConnectionFailed
from .transport import UnixEndpoint, open_socket
from .uri import SYSTEM_SOCKET, RemoteURI

CONNECT_TIMEOUT = 10
#: How long the tunnel may take to come up when ssh cannot ask anyone anything (BatchMode or no terminal).
BATCH_WAIT = 30.0
#: ... and when ssh may be asking for a passphrase on the terminal.
INTERACTIVE_WAIT = 300.0


def ssh_argv(uri: RemoteURI, local: str) -> list[str]:
    """The ssh command line for ``uri`` with the local end at ``local`` (pure: tested as is)."""
    remote = uri.params.get("socket", SYSTEM_SOCKET)
    argv = ["ssh", "-N", "-o", "ExitOnForwardFailure=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT}",
            "-o", "ServerAliveInterval=15", "-o", "ControlMaster=no", "-o", "ControlPath=none",
            "-L", f"{local}:{remote}"]
    if uri.port:
        argv += ["-p", str(uri.port)]
    if uri.user:
        argv += ["-l", uri.user]
    if "keyfile" in uri.params:
        argv += ["-i", uri.params["keyfile"]]
    if "known_hosts" in uri.params:
        argv += ["-o", f"UserKnownHostsFile={uri.params['known_hosts']}"]
    if uri.params.get("no_tty", "0") not in ("0", ""):
        argv += ["-o", "BatchMode=yes"]
    return argv + ["--", uri.host]  # "--": a host name cannot be read as an ssh option


class SSHTunnel(UnixEndpoint):
    """A running `ssh -N -L` whose local socket is this endpoint's unix socket."""

    def __init__(self, uri: RemoteURI) -> None:
        self.uri = uri
        self.remote_socket = uri.params.get("socket", SYSTEM_SOCKET)
        self._dir = tempfile.mkdtemp(prefix="pyvirt-ssh-")
        local = os.path.join(self._dir, "sock")
        super().__init__(local)
        self.where = f"ssh://{uri.host}{self.remote_socket}"
        self._log = os.path.join(self._dir, "ssh.log")
        die_with_parent = _die_with_parent()
        try:
            with open(self._log, "wb") as log:
                self._proc = subprocess.Popen(ssh_argv(uri, local), stdin=subprocess.DEVNULL,
                                              stdout=subprocess.DEVNULL, stderr=log, preexec_fn=die_with_parent)
        except OSError as exc:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise ConnectionFailed(f"cannot run ssh for {uri.uri}: {exc.strerror or exc} "
                                   "(install the OpenSSH client)") from exc
        try:
            self._wait_up(local)
        except BaseException:
            self.close()
            raise

    def _wait_up(self, local: str) -> None:
        """Until the local socket accepts; ssh's own words when it gives up."""
        batch = "BatchMode=yes" in ssh_argv(self.uri, local) or not sys.stdin.isatty()
        wait = BATCH_WAIT if batch else INTERACTIVE_WAIT
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ConnectionFailed(f"ssh to {self.uri.host} failed (exit status {self._proc.returncode}): "
                                       f"{self._ssh_said() or 'no message'}")
            if os.path.exists(local):
                try:
                    open_socket(local, 1.0).close()
                    return
                except ConnectionFailed:
                    pass
            time.sleep(0.005)
        raise ConnectionFailed(f"ssh to {self.uri.host} did not open its tunnel within {wait:.0f} s: "
                               f"{self._ssh_said() or 'no message'}")

    def _ssh_said(self) -> str:
        try:
            with open(self._log, encoding="utf-8", errors="replace") as f:
                lines = [line.strip() for line in f if line.strip() and not line.startswith("Warning: Permanently")]
        except OSError:
            return ""
        seen = [re.sub(r"^channel \d+: ", "", line) for line in lines[-10:]]  # one stream is one channel
        return "; ".join(dict.fromkeys(seen))

    def open(self, timeout: float | None = None) -> _socket.socket:
        if self._proc.poll() is not None:
            raise ConnectionFailed(f"the ssh tunnel to {self.uri.host} has ended: {self._ssh_said() or 'no message'}")
        return super().open(timeout)

    def diagnose(self) -> str:
        """Why the remote end closed a stream at once (sshd could not reach the daemon's socket)."""
        said = self._ssh_said()
        if "open failed" in said:
            return (f"sshd on {self.uri.host} could not connect to {self.remote_socket}: {said}; is pyvirtd running "
                    "there, at that socket (?socket=PATH), and is the ssh user root?")
        return said

    def close(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self._dir, ignore_errors=True)


def _die_with_parent() -> Callable[[], None] | None:
    """What the child runs before exec: ask for SIGTERM when the client dies, so no tunnel outlives it.
    ctypes is loaded here, in the parent: the child between fork and exec should do as little as it can."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def child() -> None:
        prctl(1, 15)  # PR_SET_PDEATHSIG, SIGTERM

    return child
