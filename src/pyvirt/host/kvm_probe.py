"""Is KVM really usable? Boot a 512-byte guest under it and see if it finishes.

/dev/kvm existing (and even KVM_CREATE_VM succeeding) proves little: on a
kvm_pvm host ``-cpu host`` dies at once and the default CPU crawls through
SeaBIOS. So we boot a hand-assembled boot sector that prints a marker on the
first serial port and then makes QEMU exit through ``isa-debug-exit`` with a
known status. KVM is usable iff the marker appears and QEMU exits with that
status within the timeout. Whatever QEMU process we start is killed (its whole
process group) before we return, on every path.
"""
from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .caps import KvmStatus

#: What the boot sector prints on COM1 (0x3f8) before it exits.
PROBE_MARKER = b"PYVIRT-PROBE-OK"
#: The byte written to isa-debug-exit; QEMU then exits with (v << 1) | 1.
EXIT_VALUE = 0x31
EXPECTED_STATUS = (EXIT_VALUE << 1) | 1  # 99

_LOAD_ADDR = 0x7C00  # where the BIOS loads a boot sector (segment 0)
_MSG_OFFSET = 0x1B  # offset of the marker string in the sector, right after the code

# Real-mode x86 code, loaded at 0000:7C00. Every jump is relative and every data
# access goes through DS=0 with an absolute address, so it works whether the
# BIOS entered with CS:IP = 0000:7C00 or 07C0:0000.
_CODE = bytes(
    [
        0xFA,                    # 00: cli              no interrupts: nothing may preempt us
        0xFC,                    # 01: cld              lodsb walks the string upwards
        0x31, 0xC0,              # 02: xor ax, ax
        0x8E, 0xD8,              # 04: mov ds, ax       DS = 0, so DS:SI is a linear address
        0xBE, (_LOAD_ADDR + _MSG_OFFSET) & 0xFF, (_LOAD_ADDR + _MSG_OFFSET) >> 8,
                                 # 06: mov si, 0x7C1B   SI -> marker string
        0xBA, 0xF8, 0x03,        # 09: mov dx, 0x03F8   COM1 transmit register
        0xAC,                    # 0C: lodsb            AL = [DS:SI], SI += 1
        0x84, 0xC0,              # 0D: test al, al      end of string (NUL)?
        0x74, 0x03,              # 0F: jz 0x14          yes -> exit
        0xEE,                    # 11: out dx, al       send the byte (QEMU's UART needs no setup)
        0xEB, 0xF8,              # 12: jmp 0x0C         next byte
        0xB0, EXIT_VALUE,        # 14: mov al, 0x31
        0xE6, 0xF4,              # 16: out 0xF4, al     isa-debug-exit: QEMU exits with status 99
        0xF4,                    # 18: hlt              only reached without isa-debug-exit:
        0xEB, 0xFD,              # 19: jmp 0x18         halt forever (the timeout catches it)
    ]
)


def boot_sector() -> bytes:
    """The 512-byte probe image: code, NUL-terminated marker, zero padding, 0x55AA signature."""
    if len(_CODE) != _MSG_OFFSET:
        raise AssertionError(f"boot code is {len(_CODE)} bytes, the marker offset assumes {_MSG_OFFSET}")
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


def run_probe_boot(qemu_binary: str, accel: str, timeout: float) -> BootResult:
    """Boot the probe sector under ``accel`` with a hard timeout; never leaves QEMU running."""
    with tempfile.TemporaryDirectory(prefix="pyvirt-kvmprobe-") as tmp:
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
                cwd=tmp,
            )
        except OSError as exc:
            return BootResult(accel, False, False, None, False, 0.0, "", spawn_error=f"{qemu_binary}: {exc.strerror or exc}")
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
    lines = [ln.strip() for ln in err.decode(errors="replace").splitlines() if ln.strip()]
    rc = None if timed_out else proc.returncode
    ok = (not timed_out) and marker and rc == EXPECTED_STATUS
    return BootResult(accel, ok, timed_out, rc, marker, seconds, lines[-1] if lines else "")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


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


def probe_kvm(qemu_binary: str, timeout: float = 3.0, *, dev: str = "/dev/kvm") -> KvmStatus:
    """Decide whether guests can run under KVM, by really booting one."""
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
    res = run_probe_boot(qemu_binary, "kvm", timeout)
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
