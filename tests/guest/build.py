"""Build the tiny test guest: a Debian kernel and a busybox initramfs.

Integration tests boot this guest under TCG to see a VM come up, take a DHCP
lease and power off on an ACPI button press. Everything comes from Debian
packages (the generic kernel: the -cloud- one lacks e1000 and 8139), so the
guest builds offline once the .debs are downloaded. The result is cached in
DIR (default .cache/guest in the repo, or $PYVIRT_GUEST_CACHE) and rebuilt
only when an input changes: the kernel .deb, the busybox version, or these
build files and the rootfs/ assets.

    python -m tests.guest.build [--out DIR]     # prints the kernel and initrd paths

DIR holds vmlinuz (Debian's bzImage as shipped), vmlinux (the same kernel
decompressed, booted through its PVH entry: ~2 s faster under TCG; this is
``GuestImage.kernel``) and initrd.img (newc cpio, gzip). Boot it with
``-kernel DIR/vmlinux -initrd DIR/initrd.img -append "console=ttyS0 quiet
panic=-1"`` (q35, pc or microvm; microvm needs virtio-*-device models). It
prints ``PYVIRT-GUEST-READY uptime=S`` once on the console when up, and
``PYVIRT-GUEST-LEASE <if> <ip>`` per lease.
``pyvirt.poweroff_after=N`` on the command line powers it off after N seconds.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make "tests.guest" importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pyvirt.errors import HostError
from tests.guest import cpio, kernel, kmod

log = logging.getLogger("pyvirt.tests.guest")

HERE = Path(__file__).resolve().parent
ROOTFS = HERE / "rootfs"
DEFAULT_CACHE = HERE.parents[1] / ".cache" / "guest"
CACHE_ENV = "PYVIRT_GUEST_CACHE"
# tsc_early_khz: under TCG the kernel's TSC calibration against the PIT fails, and on
# microvm (no HPET/PM timer) about one boot in seven then hangs before init; a given
# TSC frequency skips the calibration (0 hangs in 12 boots).
DEFAULT_CMDLINE = "console=ttyS0 quiet panic=-1 tsc_early_khz=2000000"
READY_MARKER = "PYVIRT-GUEST-READY"
LEASE_MARKER = "PYVIRT-GUEST-LEASE"
POWEROFF_MARKER = "PYVIRT-GUEST-POWEROFF"

KERNEL_META_PACKAGE = "linux-image-amd64"
BUSYBOX_PACKAGE = "busybox-static"
HOST_BUSYBOX = Path("/bin/busybox")
APT_LISTS = Path("/var/lib/apt/lists")
DPKG_STATUS = Path("/var/lib/dpkg/status")
FORMAT = 1  # bump to force a rebuild when the layout of the output changes

# Loaded by /init in this order, each after its dependencies (ahci brings
# libahci). A module the kernel lacks is left out with a note; the guest
# still boots.
MODULES = (
    "virtio_pci", "virtio_mmio", "virtio_blk", "virtio_net", "virtio_console",
    "virtio_balloon", "virtio_rng", "virtio_scsi",
    "e1000", "e1000e", "8139cp", "8139too",
    "button", "evdev",
    "ahci", "ata_piix", "sd_mod", "sr_mod", "isofs",
)
# The directories busybox applets and /init expect.
DIRS = ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys",
        "run", "tmp", "root", "var", "var/log", "lib", "lib/modules")


@dataclass(frozen=True)
class GuestImage:
    """A bootable kernel + initramfs pair and the command line to boot it with."""

    kernel: Path
    initrd: Path
    cmdline: str = DEFAULT_CMDLINE
    # Debian's compressed kernel as shipped; ``kernel`` is the same kernel
    # decompressed (PVH entry) when that is possible, ~2 s faster under TCG.
    bzimage: Path | None = None


@dataclass(frozen=True)
class Inputs:
    """What a build is made of, as resolved from apt and dpkg."""

    kernel_package: str
    kernel_deb: str
    busybox_version: str
    busybox_deb: str  # "" when the host's busybox-static is used


def cache_dir(out_dir: Path | None = None) -> Path:
    """Where the guest lives: ``out_dir``, else $PYVIRT_GUEST_CACHE, else .cache/guest."""
    if out_dir is not None:
        return Path(out_dir)
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else DEFAULT_CACHE


def _run(argv: Sequence[str], *, cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise HostError(f"test guest: cannot run {argv[0]!r}: it is not installed",
                        detail="install it (apt-get install apt dpkg) and retry") from exc
    if done.returncode != 0:
        raise HostError(f"test guest: {' '.join(argv)} failed with exit code {done.returncode}",
                        detail=(done.stderr.strip() or done.stdout.strip())
                        + "\nif apt cannot find the package, run apt-get update")
    return done.stdout


def _apt_fingerprint() -> list[list[object]]:
    """Cheap stand-in for 'what apt and dpkg would answer' (apt-cache takes ~0.5 s)."""
    files = sorted(APT_LISTS.glob("*_Packages*")) if APT_LISTS.is_dir() else []
    rows: list[list[object]] = []
    for path in [*files, DPKG_STATUS, HOST_BUSYBOX]:
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        rows.append([str(path), st.st_size, st.st_mtime_ns])
    return rows


def _print_uri(package: str) -> tuple[str, str]:
    """(.deb file name, version) apt would download for ``package``."""
    out = _run(["apt-get", "download", "--print-uris", package])
    match = re.search(r"^'[^']+' (\S+\.deb) \d+ ", out, re.M)
    if not match:
        raise HostError(f"test guest: apt-get download --print-uris {package} printed no .deb",
                        detail=out.strip() + "\nrun apt-get update and retry")
    deb = match.group(1)
    return deb, deb.split("_")[1].replace("%3a", ":")


def _resolve_from_apt() -> Inputs:
    depends = _run(["apt-cache", "depends", KERNEL_META_PACKAGE])
    match = re.search(r"Depends: (linux-image-\S+)", depends)
    if not match:
        raise HostError(f"test guest: {KERNEL_META_PACKAGE} depends on no linux-image package",
                        detail=depends.strip())
    kernel_package = match.group(1)
    kernel_deb, _ = _print_uri(kernel_package)
    status = subprocess.run(["dpkg-query", "-W", "-f", "${Status}\t${Version}", BUSYBOX_PACKAGE],
                            capture_output=True, text=True, check=False).stdout
    state, _, version = status.partition("\t")
    if state == "install ok installed" and HOST_BUSYBOX.exists():
        return Inputs(kernel_package, kernel_deb, version, "")
    busybox_deb, version = _print_uri(BUSYBOX_PACKAGE)
    return Inputs(kernel_package, kernel_deb, version, busybox_deb)


def resolve_inputs(cache: Path) -> Inputs:
    """The packages to build from; asks apt only when its lists or dpkg changed."""
    record = cache / "resolved.json"
    fingerprint = _apt_fingerprint()
    try:
        saved = json.loads(record.read_text())
        if saved["fingerprint"] == fingerprint:
            return Inputs(**saved["inputs"])
    except (FileNotFoundError, KeyError, TypeError, ValueError):
        saved = None
    try:
        inputs = _resolve_from_apt()
    except HostError:
        if saved is None:
            raise
        log.warning("apt cannot resolve the guest packages; reusing the last answer")
        return Inputs(**saved["inputs"])
    _write_atomic(record, json.dumps({"fingerprint": fingerprint,
                                      "inputs": asdict(inputs)}, indent=1).encode())
    return inputs


def _build_files() -> Iterator[Path]:
    yield from (HERE / name for name in ("build.py", "cpio.py", "kernel.py", "kmod.py"))
    yield from sorted(path for path in ROOTFS.rglob("*") if path.is_file())


def input_key(inputs: Inputs) -> str:
    """A hash that changes whenever the built guest would change."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"format": FORMAT, "kernel": inputs.kernel_deb,
                              "busybox": inputs.busybox_version,
                              "modules": MODULES}, sort_keys=True).encode())
    for path in _build_files():
        digest.update(str(path.relative_to(HERE)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.",
                                     delete=False) as tmp:
        tmp.write(data)
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, path)


@contextlib.contextmanager
def _locked(cache: Path) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process building the guest in %s", cache)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _download(package: str, deb: str, cache: Path) -> Path:
    """The package's .deb in cache/downloads, fetched with apt-get if not there yet."""
    downloads = cache / "downloads"
    target = downloads / deb
    if target.exists():
        return target
    downloads.mkdir(parents=True, exist_ok=True)
    version = deb.split("_")[1].replace("%3a", ":")
    log.info("downloading %s=%s with apt-get", package, version)
    with tempfile.TemporaryDirectory(dir=downloads, prefix=".partial-") as tmp:
        _run(["apt-get", "download", "-q", f"{package}={version}"], cwd=Path(tmp))
        got = list(Path(tmp).glob("*.deb"))
        if len(got) != 1:
            raise HostError(f"test guest: apt-get download {package} left {len(got)} .deb files",
                            detail=f"in {tmp}; expected exactly one")
        os.replace(got[0], target)
    log.info("downloaded %s (%.1f MB)", target.name, target.stat().st_size / 1e6)
    return target


def _unpack(deb: Path, into: Path) -> None:
    log.info("unpacking %s", deb.name)
    _run(["dpkg-deb", "-x", str(deb), str(into)])


def _one(paths: list[Path], what: str, where: Path) -> Path:
    if len(paths) != 1:
        raise HostError(f"test guest: expected one {what} in {where}, found {len(paths)}",
                        detail="\n".join(map(str, paths)) or None)
    return paths[0]


def _initramfs(busybox: Path, load: kmod.LoadPlan) -> bytes:
    """The gzip-compressed newc archive: busybox, its applets, modules and rootfs/."""
    applets = _run([str(busybox), "--list-full"]).split()
    raw = io.BytesIO()
    archive = cpio.NewcWriter(raw)
    for name in DIRS:
        archive.add_dir(name)
    archive.add_char_device("dev/console", 5, 1)
    archive.add_char_device("dev/null", 1, 3, 0o666)
    archive.add_file("bin/busybox", busybox.read_bytes(), 0o755)
    for applet in applets:
        if applet != "bin/busybox" and "/" in applet:
            archive.add_symlink(applet, "/bin/busybox")
    for path in sorted(ROOTFS.rglob("*")):
        rel = str(path.relative_to(ROOTFS))
        if path.is_dir():
            if rel not in DIRS:
                archive.add_dir(rel)
        else:
            archive.add_file(rel, path.read_bytes(), 0o755)  # all assets are scripts
    for module in load.modules:
        archive.add_file(f"lib/modules/{module.name}.ko", module.data)
    archive.add_file("etc/modules.load", load.lines().encode())
    archive.close()
    return gzip.compress(raw.getvalue(), compresslevel=6, mtime=0)


def _build(cache: Path, inputs: Inputs, key: str) -> dict[str, object]:
    kernel_deb = _download(inputs.kernel_package, inputs.kernel_deb, cache)
    busybox_deb = (_download(BUSYBOX_PACKAGE, inputs.busybox_deb, cache)
                   if inputs.busybox_deb else None)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".build-") as tmp:
        root = Path(tmp)
        _unpack(kernel_deb, root / "kernel")
        busybox = HOST_BUSYBOX
        if busybox_deb is not None:
            _unpack(busybox_deb, root / "busybox")
            busybox = root / "busybox/bin/busybox"
        vmlinuz = _one(sorted((root / "kernel/boot").glob("vmlinuz-*")), "vmlinuz", kernel_deb)
        moddir = _one([p for p in sorted((root / "kernel").glob("*lib/modules/*"))
                       if p.is_dir()], "lib/modules/<version>", kernel_deb)
        files = kmod.index_modules(moddir)
        builtin = kmod.builtin_names(moddir / "modules.builtin")

        def lookup(name: str) -> kmod.Module | None:
            return kmod.Module.from_file(files[name]) if name in files else None

        load = kmod.plan(MODULES, lookup, builtin)
        for note in load.missing:
            log.warning("module left out, the guest boots without it: %s", note)
        initrd = _initramfs(busybox, load)
        bzimage = vmlinuz.read_bytes()
        elf = kernel.pvh_elf(bzimage)
        if elf is None:
            log.warning("%s has no PVH entry; guests boot the slower bzImage", vmlinuz.name)
            (cache / "vmlinux").unlink(missing_ok=True)
        else:
            _write_atomic(cache / "vmlinux", elf)
        _write_atomic(cache / "vmlinuz", bzimage)
        _write_atomic(cache / "initrd.img", initrd)
    stamp: dict[str, object] = {
        "key": key, "inputs": asdict(inputs), "kernel_release": moddir.name,
        "modules": [m.name for m in load.modules], "builtin": list(load.builtin),
        "missing": list(load.missing), "initrd_bytes": len(initrd), "pvh": elf is not None,
    }
    _write_atomic(cache / "stamp.json", json.dumps(stamp, indent=1).encode())
    log.info("built the test guest in %s (kernel %s, initrd %.1f MB, %d modules)",
             cache, moddir.name, len(initrd) / 1e6, len(load.modules))
    return stamp


def _current(cache: Path, key: str) -> GuestImage | None:
    """The cached guest if it was built from ``key`` and all its files are there."""
    try:
        stamp = json.loads((cache / "stamp.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(stamp, dict) or stamp.get("key") != key:
        return None
    bzimage, elf = cache / "vmlinuz", cache / "vmlinux"
    image = GuestImage(elf if stamp.get("pvh") else bzimage, cache / "initrd.img",
                       bzimage=bzimage)
    files = (image.kernel, image.initrd, bzimage)
    return image if all(path.is_file() for path in files) else None


def build(out_dir: Path | None = None) -> GuestImage:
    """The test guest, built into ``out_dir`` (see ``cache_dir``) unless it is current."""
    cache = cache_dir(out_dir).resolve()
    with _locked(cache):
        inputs = resolve_inputs(cache)
        key = input_key(inputs)
        image = _current(cache, key)
        if image is None:
            started = time.monotonic()
            _build(cache, inputs, key)
            log.info("guest build took %.1f s", time.monotonic() - started)
            image = _current(cache, key)
        if image is None:
            raise HostError(f"test guest: the build in {cache} left no usable image",
                            detail="remove the directory and build again")
    return image


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.guest.build",
                                     description="Build (or find cached) the pyvirt test guest.")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"cache directory (default ${CACHE_ENV} or {DEFAULT_CACHE})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="guest: %(message)s", stream=sys.stderr)
    try:
        image = build(args.out)
    except HostError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(image.kernel)
    print(image.initrd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
