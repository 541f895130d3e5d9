"""Is KVM really usable? Boot a 512-byte guest under it and see if it finishes.

/dev/kvm existing (and even KVM_CREATE_VM succeeding) proves little: on a
kvm_pvm host ``-cpu host`` dies at once, and a guest kernel hangs in its
decompressor, whose page tables are filled by its own page-fault handler: the
first exception taken through a long-mode IDT never returns. A boot sector
that stays in real mode passes there, so ours does what a kernel does first:
it enters protected mode, turns on paging and long mode, takes an ``int3``
through an IDT, then prints a marker on the first serial port and makes QEMU
exit through ``isa-debug-exit`` with a known status. KVM is usable iff the
marker appears and QEMU exits with that status within the timeout. Whatever
QEMU process we start is killed (its whole process group) before we return,
on every path, and it dies with its parent should the daemon be killed first.
Its files live in a directory of their own under ``workdir`` (the daemon's
run directory, which the daemon cleans at start), removed after the boot.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..children import die_with_parent
from .caps import KvmStatus

#: What the boot sector prints on COM1 (0x3f8) before it exits.
PROBE_MARKER = b"PYVIRT-PROBE-OK"
#: The byte written to isa-debug-exit; QEMU then exits with (v << 1) | 1.
EXIT_VALUE = 0x31
EXPECTED_STATUS = (EXIT_VALUE << 1) | 1  # 99

#: Offset of the marker in the sector: the code below addresses it there (RIP-relative).
MSG_OFFSET = 0x118

# The code and data before the marker, loaded at 0000:7C00 by the BIOS. Assembled
# with GNU as (`as --64 probe.S && ld -Ttext 0 --oformat binary`) from:
#
#   .code16                       cli; cld; xor %ax,%ax; mov %ax,%ds
#                                 ljmp $0,$0x7c00+real          # CS = 0 whatever the BIOS set
#   real:                         lgdt gdtr; CR0.PE = 1; ljmp $0x08,$0x7c00+pm32
#   .code32
#   pm32:                         DS = ES = SS = 0x10; esp = 0x7000
#                                 zero 0x1000-0x5fff (rep stosl)
#                                 PML4[0] @0x1000 = 0x2003; PDPT[0] @0x2000 = 0x3003
#                                 PD[0] @0x3000 = 0x83 (one 2 MiB identity page)
#                                 CR3 = 0x1000; CR4.PAE = 1; EFER.LME = 1 (rdmsr/wrmsr)
#                                 CR0.PG = 1; ljmp $0x18,$0x7c00+lm64
#   .code64
#   lm64:                         IDT at 0x5000: gate 3 -> handler (selector 0x18, type 0x8e)
#                                 lidt idtr; int3               # hangs on a kvm_pvm host
#                                 lea msg(%rip),%rsi; mov $0x3f8,%dx
#                                 1: lodsb; test %al,%al; jz 2f; out %al,%dx; jmp 1b
#                                 2: mov $0x31,%al; out %al,$0xf4   # isa-debug-exit
#                                 3: hlt; jmp 3b
#   handler:                      iretq
#   gdt:                          null; code32 0x00cf9a000000ffff; data 0x00cf92000000ffff;
#                                 code64 0x00af9a000000ffff
#   gdtr:                         .word 31; .long 0x7c00+gdt
#   idtr:                         .word 0xfff; .quad 0x5000
_CODE = bytes.fromhex(
    "fafc31c08ed8ea0b7c00000f0116087d0f20c06683c8010f22c0ea1f7c080066b810008ed88ec08ed0bc00700000bf00"
    "10000031c0b900140000f3abc7050010000003200000c7050020000003300000c7050030000083000000b8001000000f"
    "22d80f20e083c8200f22e0b9800000c00f320d000100000f300f20c00d000000800f22c0ea8b7c00001800488d054e00"
    "000048c7c73050000066890766c74702180066c74704008e48c1e81066894706c7470800000000c7470c000000000f01"
    "1d49000000cc488d354b00000066baf803ac84c07403eeebf8b031e6f4f4ebfd48cf660f1f4400000000000000000000"
    "ffff0000009acf00ffff00000092cf00ffff0000009aaf001f00e87c0000ff0f0050000000000000"
)


def boot_sector() -> bytes:
    """The 512-byte probe image: code, NUL-terminated marker, zero padding, 0x55AA signature."""
    if len(_CODE) != MSG_OFFSET:
        raise AssertionError(f"boot code is {len(_CODE)} bytes, the marker offset assumes {MSG_OFFSET}")
    body = _CODE + PROBE_MARKER + b"\r\n\0"
    return body + bytes(510 - len(body)) + b"\x55\xaa"


def _opt_path(path: Path) -> str:
    """A path inside a QEMU option value: commas are doubled."""
    return str(path).replace(",", ",,")


def probe_argv(qemu_binary: str, accel: str, image: Path, serial_out: Path) -> list[str]:
    """The QEMU command line for one probe boot (pure: builds, does not run)."""
    return [
        qemu_binary,
        "-accel", accel,
        "-M", "pc",
        "-m", "16",
        "-nodefaults",
        "-no-user-config",
        "-display", "none",
        "-no-reboot",  # a triple fault ends QEMU instead of looping
        "-serial", f"file:{serial_out}",
        "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
        "-drive", f"file={_opt_path(image)},format=raw,if=ide",
    ]


@dataclass(frozen=True)
class BootResult:
    """What one probe boot did."""

    accel: str
    ok: bool  # marker seen and expected exit status, in time
    timed_out: bool
    returncode: int | None  # None when killed on timeout or never started
    marker_seen: bool
    seconds: float
    stderr_tail: str  # QEMU's last stderr line, for the reason
    spawn_error: str | None = None


def run_probe_boot(qemu_binary: str, accel: str, timeout: float, workdir: Path | None = None) -> BootResult:
    """Boot the probe sector under ``accel`` with a hard timeout; never leaves QEMU running.

    ``workdir``: where the probe's directory goes (the system's temp directory if None).
    """
    if workdir is not None:
        workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="pyvirt-kvmprobe-", dir=workdir)
    try:
        image = Path(tmp) / "boot.img"
        serial = Path(tmp) / "serial.out"
        image.write_bytes(boot_sector())
        argv = probe_argv(qemu_binary, accel, image, serial)
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group, so the kill gets all of it
                preexec_fn=die_with_parent(),  # and it dies with us if we are killed first
                cwd=tmp,
            )
        except OSError as exc:
            return BootResult(accel, False, False, None, False, 0.0, "",
                              spawn_error=f"{qemu_binary}: {exc.strerror or exc}")
        timed_out = False
        try:
            try:
                _, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc)
                _, err = proc.communicate()
        finally:
            if proc.poll() is None:  # interrupted (e.g. KeyboardInterrupt): still kill it
                _kill_group(proc)
                proc.wait()
        seconds = time.monotonic() - start
        marker = serial.exists() and PROBE_MARKER in serial.read_bytes()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines = [ln.strip() for ln in err.decode(errors="replace").splitlines() if ln.strip()]
    rc = None if timed_out else proc.returncode
    ok = (not timed_out) and marker and rc == EXPECTED_STATUS
    return BootResult(accel, ok, timed_out, rc, marker, seconds, lines[-1] if lines else "")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


_KVM_MODULES = ("kvm_intel", "kvm_amd", "kvm_pvm")


def pick_kvm_module(loaded: set[str]) -> str | None:
    """The vendor KVM module among the loaded ones (kvm_intel/kvm_amd/kvm_pvm), else plain kvm."""
    for name in _KVM_MODULES:
        if name in loaded:
            return name
    return "kvm" if "kvm" in loaded else None


def loaded_modules(root: Path = Path("/")) -> set[str]:
    """Names of loaded kernel modules: /proc/modules, or /sys/module where /proc/modules is absent."""
    try:
        text = (root / "proc/modules").read_text()
        return {line.split()[0] for line in text.splitlines() if line.strip()}
    except OSError:
        pass
    try:
        # /sys/module also lists built-ins that have parameters; good enough to name KVM's module.
        return {p.name for p in (root / "sys/module").iterdir()}
    except OSError:
        return set()


def kvm_module(root: Path = Path("/")) -> str | None:
    return pick_kvm_module(loaded_modules(root))


def probe_kvm(qemu_binary: str, timeout: float = 3.0, *, dev: str = "/dev/kvm",
              workdir: Path | None = None) -> KvmStatus:
    """Decide whether guests can run under KVM, by really booting one (its files under ``workdir``)."""
    module = kvm_module()
    where = f"host module {module}" if module else "no KVM module found"
    if not os.path.exists(dev):
        return KvmStatus(False, False, f"{dev} missing ({where}); guests will run with TCG", module)
    if not os.access(dev, os.R_OK | os.W_OK):
        return KvmStatus(
            True, False,
            f"{dev} exists but is not readable and writable by uid {os.getuid()}; "
            "add the user to the kvm group or run as root; guests will run with TCG",
            module,
        )
    res = run_probe_boot(qemu_binary, "kvm", timeout, workdir)
    return KvmStatus(True, res.ok, describe(res, timeout, where), module)


def describe(res: BootResult, timeout: float, where: str) -> str:
    """One sentence saying what the probe boot did."""
    if res.ok:
        return f"KVM guest finished a trivial boot in {res.seconds:.2f} s ({where})"
    tcg = "; guests will run with TCG"
    if res.spawn_error:
        return f"cannot run QEMU for the KVM probe ({res.spawn_error}){tcg}"
    if res.timed_out:
        return f"KVM guest did not finish a trivial boot within {timeout:.1f} s ({where}){tcg}"
    said = f": {res.stderr_tail}" if res.stderr_tail else ""
    if res.returncode == EXPECTED_STATUS and not res.marker_seen:
        what = "exited as expected but its serial marker never appeared"
    else:
        what = f"exited with status {res.returncode} after {res.seconds:.2f} s{said}"
    return f"KVM guest failed a trivial boot: QEMU {what} ({where}){tcg}"
