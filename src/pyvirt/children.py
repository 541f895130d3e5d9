"""Helper processes that must not outlive the process that started them.

``die_with_parent()`` gives ``subprocess`` a ``preexec_fn`` that sets Linux's
PR_SET_PDEATHSIG: the kernel sends the child SIGKILL when its parent dies,
however it dies (SIGKILL included), and the setting survives the exec. A
pyvirtd killed with SIGKILL cannot kill its children itself; this does.

Which children get it, and why:
- the KVM probe's QEMU and QEMU's ``-X help`` queries (host/): on a host
  where KVM hangs guests the probe never ends by itself, and nobody but the
  daemon waits for either answer;
- qemu-img's short commands (qemu/img_args.py): a daemon killed while one
  runs leaves no qemu-img holding a lock on the volume. (A convert, which
  can run for minutes, gets the same from `setpriv --pdeathsig` in
  qemu/img_convert.py: no preexec_fn, so subprocess can use vfork.)
Which do not: guests' QEMU and dnsmasq outlive the daemon by design (they are
reattached to after a restart); nft and the pool tools (mount, mkfs, LVM,
parted) are short and must not be cut off while they write metadata.

The "parent" is the thread that forked: a child started from a worker thread
is signalled when that thread ends. pyvirt waits for these children inside
the thread that started them, so for them the two are the same.
"""
from __future__ import annotations

import functools
import os
import signal
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


@functools.cache
def _prctl() -> Callable[..., int]:
    """libc's prctl, resolved in the parent (the child only calls it); ctypes loads on first use."""
    import ctypes

    fn = ctypes.CDLL(None, use_errno=True).prctl
    fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    fn.restype = ctypes.c_int
    return fn


def die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child get ``sig`` when this process dies."""
    prctl = _prctl()
    parent = os.getpid()

    def preexec() -> None:
        if prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
            os._exit(126)
        if os.getppid() != parent:  # the parent died before the line above: nobody will signal us
            os._exit(126)

    return preexec
