"""The KVM probe's pure parts: the boot sector bytes, the QEMU argv, module naming, reasons."""
from __future__ import annotations

from pathlib import Path

from pyvirt.host.kvm_probe import (
    EXIT_VALUE,
    EXPECTED_STATUS,
    MSG_OFFSET,
    PROBE_MARKER,
    BootResult,
    boot_sector,
    describe,
    loaded_modules,
    pick_kvm_module,
    probe_argv,
    probe_kvm,
)


def test_boot_sector_layout() -> None:
    sector = boot_sector()
    assert len(sector) == 512
    assert sector[510:] == b"\x55\xaa"
    assert sector[0] == 0xFA  # cli
    assert sector[MSG_OFFSET:MSG_OFFSET + len(PROBE_MARKER)] == PROBE_MARKER
    assert sector[MSG_OFFSET:].index(b"\0") > len(PROBE_MARKER)  # NUL-terminated
    code = sector[:MSG_OFFSET]
    assert b"\x0f\x22\xc0" in code  # mov %eax,%cr0: protected mode, then paging
    assert b"\x0f\x30" in code  # wrmsr: EFER.LME, long mode
    assert b"\x0f\x01\x1d" in code and b"\xcc" in code  # lidt, then int3 through the IDT
    assert bytes([0xB0, EXIT_VALUE, 0xE6, 0xF4]) in code  # mov al, v ; out 0xf4, al
    assert EXPECTED_STATUS == (EXIT_VALUE << 1) | 1 == 99


def test_probe_argv() -> None:
    argv = probe_argv("/usr/bin/qemu-system-x86_64", "kvm", Path("/tmp/a,b/boot.img"), Path("/tmp/x/serial.out"))
    assert argv[0] == "/usr/bin/qemu-system-x86_64"
    assert argv[argv.index("-accel") + 1] == "kvm"
    assert "-nodefaults" in argv and "-no-user-config" in argv
    assert argv[argv.index("-device") + 1] == "isa-debug-exit,iobase=0xf4,iosize=0x04"
    assert argv[argv.index("-drive") + 1] == "file=/tmp/a,,b/boot.img,format=raw,if=ide"
    assert argv[argv.index("-serial") + 1] == "file:/tmp/x/serial.out"
    assert "-cpu" not in argv  # '-cpu host' dies at once on kvm_pvm


def test_kvm_module_names(tmp_path: Path) -> None:
    assert pick_kvm_module({"kvm", "kvm_pvm", "bridge"}) == "kvm_pvm"
    assert pick_kvm_module({"kvm", "kvm_intel"}) == "kvm_intel"
    assert pick_kvm_module({"kvm"}) == "kvm"
    assert pick_kvm_module({"bridge"}) is None
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/modules").write_text(
        "kvm_amd 155648 0 - Live 0x0000000000000000\nkvm 1142784 1 kvm_amd, Live 0x0000000000000000\n")
    assert loaded_modules(tmp_path) == {"kvm_amd", "kvm"}
    (tmp_path / "proc/modules").unlink()
    for name in ("kvm", "kvm_pvm", "bridge"):  # hosts without /proc/modules, like this one
        (tmp_path / "sys/module" / name).mkdir(parents=True)
    assert pick_kvm_module(loaded_modules(tmp_path)) == "kvm_pvm"


def test_reasons_say_what_happened() -> None:
    where = "host module kvm_pvm"
    timeout = BootResult("kvm", False, True, None, False, 3.01, "")
    assert describe(timeout, 3.0, where) == (
        "KVM guest did not finish a trivial boot within 3.0 s (host module kvm_pvm); guests will run with TCG")
    died = BootResult("kvm", False, False, 1, False, 0.05,
                      "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x0")
    text = describe(died, 3.0, where)
    assert "status 1" in text and "failed to set MSR 0x10a" in text and text.endswith("guests will run with TCG")
    ok = BootResult("kvm", True, False, EXPECTED_STATUS, True, 0.123, "")
    assert describe(ok, 3.0, "host module kvm_intel") == (
        "KVM guest finished a trivial boot in 0.12 s (host module kvm_intel)")
    silent = BootResult("kvm", False, False, EXPECTED_STATUS, False, 0.1, "")
    assert "marker never appeared" in describe(silent, 3.0, where)


def test_missing_device_short_circuits(tmp_path: Path) -> None:
    status = probe_kvm("/nonexistent/qemu", 3.0, dev=str(tmp_path / "kvm"))
    assert not status.dev_exists and not status.usable
    assert status.reason.startswith(f"{tmp_path / 'kvm'} missing")
