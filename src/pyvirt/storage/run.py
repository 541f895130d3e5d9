"""The one way pool backends run host tools (mount, mkfs, LVM, parted, blkid).

A non-zero exit becomes a ``HostError`` whose message carries the tool's own
words (its last stderr line) and whose detail is the command line and the whole
stderr, so the user sees why and can rerun it by hand. A missing binary names
the Debian package to install; a hung tool is killed at its timeout.
"""
from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Sequence
from shutil import which

from ..errors import HostError

TIMEOUT = 120.0  # seconds; mkfs on a large disk or an NFS mount can take a while

# Which Debian package brings a tool, for the "not installed" message.
PACKAGES = {
    "parted": "parted", "blkid": "util-linux", "mount": "mount", "umount": "mount", "wipefs": "util-linux",
    "losetup": "mount", "mkfs.ext2": "e2fsprogs", "mkfs.ext3": "e2fsprogs", "mkfs.ext4": "e2fsprogs",
    "mkfs.xfs": "xfsprogs", "mkfs.vfat": "dosfstools", "mkfs.btrfs": "btrfs-progs", "iscsiadm": "open-iscsi",
    "mount.nfs": "nfs-common", "mount.cifs": "cifs-utils", "mount.glusterfs": "glusterfs-client",
}
LVM_TOOLS = ("pvcreate", "pvremove", "vgcreate", "vgremove", "vgchange", "vgs", "lvs", "pvs", "lvcreate",
             "lvremove", "lvresize")
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
# stderr lines that never say why a tool failed (skipped when picking the reason to show)
_NOISE = ("leaked on", "dmesg(1) may have more information", "udevadm: not found", "Activation disabled")


def package_for(tool: str) -> str:
    if tool in LVM_TOOLS:
        return "lvm2"
    return PACKAGES.get(tool, tool)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    path = env.get("PATH", "/usr/bin:/bin")
    missing = [d for d in _SBIN if d not in path.split(":")]
    env["PATH"] = ":".join([path, *missing])  # tools live in sbin; the daemon may run without it on PATH
    env["LC_ALL"] = "C"  # messages parsed and shown in one language
    env["LVM_SUPPRESS_FD_WARNINGS"] = "1"  # LVM complains about inherited fds on stderr otherwise
    return env


def run(argv: Sequence[str], *, timeout: float = TIMEOUT, ok: tuple[int, ...] = (0,),
        doing: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv``; an exit status outside ``ok`` raises HostError naming ``doing`` (or the tool)."""
    args = [str(a) for a in argv]
    tool = os.path.basename(args[0])
    what = doing or f"run {tool}"
    shown = shlex.join(args)
    try:
        proc = subprocess.run(args, check=False, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=_env())
    except FileNotFoundError:
        raise HostError(f"cannot {what}: {tool} is not installed; install Debian's {package_for(tool)} "
                        f"(apt-get install {package_for(tool)})") from None
    except subprocess.TimeoutExpired:
        raise HostError(f"cannot {what}: {tool} did not finish in {timeout:g}s and was killed",
                        detail=f"command: {shown}") from None
    if proc.returncode not in ok:
        stderr = proc.stderr.strip()
        lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not any(n in ln for n in _NOISE)]
        reason = lines[-1] if lines else (proc.stdout.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise HostError(f"cannot {what}: {tool} failed: {reason}",
                        detail=f"command: {shown}\nexit status: {proc.returncode}\n{stderr}".rstrip())
    return proc


def have(tool: str) -> bool:
    """Whether ``tool`` can be found on PATH or in the sbin directories."""
    return which(tool, path=_env()["PATH"]) is not None
