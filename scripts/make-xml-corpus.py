#!/usr/bin/env python3
"""Make the XML corpus of tests/data/virt-install/ with the real tools (run by hand, never by CI).

Each entry of MATRIX is one virt-install command line; its output is stored as
NAME.xml and the exact command as NAME.cmd. Run as root on Debian 12:

    apt-get install -y virtinst ovmf
    python3 scripts/make-xml-corpus.py            # all entries
    python3 scripts/make-xml-corpus.py win11 q35  # only names containing these words
    python3 scripts/make-xml-corpus.py --dumpxml  # also tests/data/libvirt-dumpxml/ (see below)
    python3 scripts/make-xml-corpus.py --dumpxml-only  # only that, from the stored corpus
    python3 scripts/make-xml-corpus.py --dumpxml-only --census  # and how many libvirt defines/starts

Why not ``--connect test:///default``: libvirt's test driver offers one guest
type only (i686, domain type 'test', emulator /usr/bin/test-hv, no machine
types, no firmware), so virt-install refuses ``--machine q35``, ``--arch
x86_64`` and ``--boot uefi`` there, and its XML is nothing a user has. The
script therefore starts a private, unprivileged libvirt session daemon (user
``nobody``, every libvirt directory under WORK; the host's libvirt, networks
and firewall are not touched) and asks it with ``--connect qemu:///session
--print-xml 1 --dry-run``: virt-install only reads the daemon's capabilities
and domain capabilities, creates no storage and defines nothing.

``--dumpxml`` runs part of the matrix through that same session daemon: define,
``virsh dumpxml --inactive``, start paused (TCG), ``virsh dumpxml`` (live: ids,
aliases, addresses) and ``--migratable``, destroy, undefine. A session daemon
writes no ``<seclabel>`` (that is qemu:///system with the DAC/AppArmor drivers).
"""
from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests/data/virt-install"
DUMP_OUT = REPO / "tests/data/libvirt-dumpxml"
WORK = Path("/tmp/pyvirt-corpus")  # the session daemon's home, and the files the command lines name
SHORT = Path("/tmp/pvcs")  # the session daemon's sockets and channel sockets: unix paths must stay short
URI = "qemu:///session"
ISO = f"{WORK}/install.iso"
DISK = f"{WORK}/disk.qcow2"
KERNEL = f"{WORK}/vmlinuz"
INITRD = f"{WORK}/initrd.img"
SHARE = f"{WORK}/share"

Entry = tuple[str, list[str]]


def imported(os_name: str, *extra: str) -> list[str]:
    return ["--osinfo", os_name, "--import", "--disk", f"path={DISK},format=qcow2", *extra]


def cdrom(os_name: str, *extra: str) -> list[str]:
    return ["--osinfo", os_name, "--cdrom", ISO, "--disk", "size=8", *extra]


def generic(*extra: str) -> list[str]:
    return imported("generic", *extra)


def xpaths(base: str, **values: str) -> list[str]:
    """virt-install's --xml edits: a plain key is an attribute of ``base``, a key with '/' a sub path."""
    out = []
    for key, value in values.items():
        out += ["--xml", f"{base}/{key if '/' in key else '@' + key}={value}"]
    return out


MATRIX: list[Entry] = [
    # -- operating system variants (virt-install's per-OS defaults) --------------------------
    ("os-win2k3", cdrom("win2k3")),
    ("os-win7", cdrom("win7")),
    ("os-win10", cdrom("win10")),
    ("os-win11", cdrom("win11")),
    ("os-win2k16", cdrom("win2k16")),
    ("os-win2k19", cdrom("win2k19")),
    ("os-win2k22", cdrom("win2k22")),
    ("os-rhel5", cdrom("rhel5.11")),
    ("os-rhel6", cdrom("rhel6.10")),
    ("os-rhel7", cdrom("rhel7.9")),
    ("os-rhel8", cdrom("rhel8.6")),
    ("os-rhel9", cdrom("rhel9.1")),
    ("os-centos5", imported("centos5.11")),
    ("os-centos6", imported("centos6.10")),
    ("os-centos7", imported("centos7.0")),
    ("os-centos8", imported("centos8")),
    ("os-centos-stream9", imported("centos-stream9")),
    ("os-fedora36", imported("fedora36")),
    ("os-fedora37", cdrom("fedora37")),
    ("os-debian10", imported("debian10")),
    ("os-debian11", cdrom("debian11")),
    ("os-debian12", imported("debiantesting")),  # this osinfo-db (2022) names Debian 12 'testing'
    ("os-ubuntu18.04", imported("ubuntu18.04")),
    ("os-ubuntu20.04", cdrom("ubuntu20.04")),
    ("os-ubuntu22.04", imported("ubuntu22.04")),
    ("os-ubuntu24.04", imported("ubuntu-lts-latest")),  # no 24.04 in this osinfo-db: its newest LTS
    ("os-alpine", imported("alpinelinux3.17")),
    ("os-freebsd13", cdrom("freebsd13.1")),
    ("os-generic", generic()),
    # -- machines and boot -----------------------------------------------------------------------
    ("machine-pc", generic("--machine", "pc")),
    ("machine-q35", generic("--machine", "q35")),
    ("machine-pc-i440fx-versioned", generic("--machine", "pc-i440fx-7.2")),
    ("boot-uefi", imported("debian11", "--boot", "uefi")),
    ("boot-uefi-secure", imported("win11", "--boot", "uefi,firmware.feature0.name=secure-boot,"
                                  "firmware.feature0.enabled=yes")),
    ("boot-uefi-loader", generic("--machine", "q35", "--boot",
                                 "loader=/usr/share/OVMF/OVMF_CODE_4M.fd,loader.readonly=yes,loader.type=pflash,"
                                 "nvram.template=/usr/share/OVMF/OVMF_VARS_4M.fd")),
    ("boot-direct-kernel", ["--osinfo", "debian11", "--disk", f"path={DISK},format=qcow2", "--boot",
                            f"kernel={KERNEL},initrd={INITRD},kernel_args=console=ttyS0 root=/dev/vda1"]),
    ("boot-install-kernel", ["--osinfo", "debian11", "--disk", "size=4", "--install",
                             f"kernel={KERNEL},initrd={INITRD},kernel_args=console=ttyS0"]),
    ("boot-pxe", ["--osinfo", "debian11", "--pxe", "--disk", "size=8"]),
    ("boot-cdrom", cdrom("generic")),
    ("boot-location-kernel", ["--osinfo", "debian11", "--disk", "size=8", "--location",
                              f"{WORK}/tree,kernel=vmlinuz,initrd=initrd.img"]),
    ("boot-menu-order", generic("--boot", "hd,cdrom,network,menu=on,useserial=on,bios.rebootTimeout=0")),
    ("boot-diskless", ["--osinfo", "generic", "--pxe", "--disk", "none"]),
    # -- graphics and video ----------------------------------------------------------------------
    ("graphics-spice", generic("--graphics", "spice")),
    ("graphics-spice-gl-none", generic("--graphics", "spice,listen=none")),
    ("graphics-vnc", generic("--graphics", "vnc")),
    ("graphics-vnc-listen-password", generic("--graphics", "vnc,listen=127.0.0.1,port=5907,password=secret")),
    ("graphics-none", generic("--graphics", "none")),
    ("video-qxl", generic("--graphics", "spice", "--video", "qxl")),
    ("video-virtio", generic("--video", "virtio")),
    ("video-vga", generic("--video", "vga")),
    ("video-bochs", generic("--machine", "q35", "--video", "bochs")),
    ("video-ramfb", generic("--video", "ramfb")),
    ("video-none", generic("--video", "none")),
    # -- sound, USB, inputs ----------------------------------------------------------------------
    ("sound-ich9", generic("--machine", "q35", "--sound", "ich9")),
    ("sound-ich6", generic("--sound", "ich6")),
    ("sound-ac97", generic("--machine", "pc", "--sound", "ac97")),
    ("sound-none", generic("--sound", "none")),
    ("usb-companions-pc", generic("--machine", "pc", "--controller", "usb2")),
    ("usb-companions-q35", imported("rhel6.10", "--machine", "q35")),
    ("usb-xhci", generic("--controller", "usb3")),
    ("usb-xhci-ports", generic("--controller", "type=usb,model=qemu-xhci",
                               "--xml", "./devices/controller[@model='qemu-xhci']/@ports=15")),
    ("usb-none", generic("--controller", "usb,model=none", "--input", "keyboard,bus=virtio",
                         "--input", "mouse,bus=virtio")),
    ("input-tablet-keyboard", generic("--input", "tablet", "--input", "keyboard,bus=usb")),
    ("input-ps2", generic("--input", "mouse,bus=ps2", "--input", "keyboard,bus=ps2")),
    # -- channels, redirdev, rng, watchdog, balloon, smartcard, tpm --------------------------------
    ("channel-spicevmc-agent", generic("--graphics", "spice", "--channel", "spicevmc",
                                       "--channel", "unix,target.type=virtio,name=org.qemu.guest_agent.0")),
    ("channel-qemu-vdagent", generic("--graphics", "vnc", "--channel",
                                     "qemu-vdagent,source.clipboard.copypaste=on,target.type=virtio")),
    ("redirdev-spicevmc", generic("--graphics", "spice", "--redirdev", "usb,type=spicevmc",
                                  "--redirdev", "usb,type=spicevmc")),
    ("redirdev-tcp", generic("--redirdev", "usb,type=tcp,server=localhost:4000")),
    ("rng-urandom", generic("--rng", "/dev/urandom")),
    ("rng-builtin", generic("--rng", "builtin")),
    ("watchdog-i6300esb", generic("--watchdog", "i6300esb,action=reset")),
    ("watchdog-itco", generic("--machine", "q35", "--watchdog", "itco,action=poweroff")),
    ("memballoon-none", generic("--memballoon", "none")),
    ("memballoon-stats", generic("--memballoon", "virtio,stats.period=10")),
    ("smartcard-passthrough", generic("--graphics", "spice", "--smartcard", "passthrough,type=spicevmc")),
    ("tpm-crb", generic("--machine", "q35", "--tpm", "emulator,model=tpm-crb,version=2.0")),
    ("tpm-tis", generic("--tpm", "emulator,model=tpm-tis,version=2.0")),
    # -- shares, cloud-init, memory, NUMA, CPU ---------------------------------------------------
    ("fs-virtiofs", generic("--memorybacking", "source.type=memfd,access.mode=shared",
                            "--filesystem", f"source={SHARE},target=share,driver.type=virtiofs")),
    ("fs-9p", generic("--filesystem", f"{SHARE},share9p")),
    ("cloud-init", imported("debian11", "--cloud-init", "root-password-generate=on,disable=on")),
    ("mem-hotplug-dimm", generic("--memory", "1024,hotplugmemorymax=4096,hotplugmemoryslots=8",
                                 "--cpu", "cell0.cpus=0,cell0.memory=1048576",
                                 "--memdev", "dimm,target.size=512,target.node=0")),
    ("mem-virtio-mem", generic("--memory", "1024,hotplugmemorymax=8192,hotplugmemoryslots=4", "--machine", "q35",
                               "--cpu", "cell0.cpus=0,cell0.memory=1048576",
                               "--memdev", "virtio-mem,target.node=0,target.block=2048,target.size=1024")),
    ("mem-nvdimm", generic("--memory", "1024,hotplugmemorymax=4096,hotplugmemoryslots=4", "--machine", "q35",
                           "--cpu", "cell0.cpus=0,cell0.memory=1048576",
                           "--memdev", f"nvdimm,source.path={WORK}/nvdimm.img,target.size=512,target.node=0")),
    ("numa-two-cells", generic("--vcpus", "4", "--memory", "2048",
                               "--cpu", "cell0.cpus=0-1,cell0.memory=1048576,cell1.cpus=2-3,cell1.memory=1048576")),
    ("cpu-host-passthrough", generic("--cpu", "host-passthrough")),
    ("cpu-host-model", generic("--cpu", "host-model")),
    ("cpu-model-features", generic("--cpu", "Skylake-Client,+vmx,-hle,disable=rtm")),
    ("cpu-topology", generic("--vcpus", "4,maxvcpus=8,sockets=2,cores=2,threads=2")),
    ("cpu-maxvcpus", generic("--vcpus", "2,maxvcpus=4")),
    # -- features, clock, iothreads, resource ----------------------------------------------------
    ("hyperv-all", generic("--features", "hyperv.relaxed.state=on,hyperv.vapic.state=on,"
                           "hyperv.spinlocks.state=on,hyperv.spinlocks.retries=8191,hyperv.synic.state=on,"
                           "hyperv.reset.state=on", "--xml", "./features/hyperv/vpindex/@state=on",
                           "--xml", "./features/hyperv/stimer/@state=on",
                           "--clock", "offset=localtime,hypervclock_present=yes")),
    ("features-smm-vmport", generic("--machine", "q35", "--features", "smm.state=on,vmport.state=off")),
    ("clock-timers", generic("--clock", "offset=utc,rtc_tickpolicy=catchup,pit_tickpolicy=delay,hpet_present=no")),
    ("clock-localtime", generic("--clock", "offset=localtime")),
    ("iothreads", generic("--iothreads", "2", "--disk", "size=2,bus=virtio,driver.iothread=1")),
    ("resource-partition", generic("--resource", "partition=/machine/web")),
    ("events-lifecycle", generic("--events", "on_poweroff=destroy,on_reboot=restart,on_crash=restart")),
    ("pm-suspend", generic("--pm", "suspend_to_mem.enabled=on,suspend_to_disk.enabled=off")),
    ("metadata-title", generic("--metadata", "title=Web front,description=Runs nginx")),
    # -- disks ------------------------------------------------------------------------------------
    ("disk-cache-io-discard", generic("--disk", "size=2,bus=virtio,cache=none,io=native,discard=unmap,"
                                      "detect_zeroes=unmap")),
    ("disk-iotune", generic("--disk", "size=2,bus=virtio,iotune.total_iops_sec=500,"
                            "iotune.total_bytes_sec=10485760")),
    ("disk-serial-readonly", generic("--disk", f"path={WORK}/ro.raw,format=raw,readonly=on,serial=RO123")),
    ("disk-nvme", generic("--machine", "q35", "--controller", "type=nvme",
                          "--disk", "size=2,bus=nvme")),
    ("disk-scsi", generic("--controller", "scsi,model=virtio-scsi", "--disk", "size=2,bus=scsi")),
    ("disk-sata", generic("--machine", "q35", "--disk", "size=2,bus=sata")),
    ("disk-usb", generic("--disk", "size=2,bus=usb,removable=on")),
    ("disk-ide-pc", generic("--machine", "pc", "--disk", "size=2,bus=ide")),
    ("disk-raw-sparse", generic("--disk", "size=2,format=raw,sparse=yes")),
    ("disk-boot-order", generic("--disk", "size=2,boot.order=1", "--network", "user,boot.order=2")),
    ("disk-floppy", generic("--machine", "pc", "--disk", f"path={WORK}/floppy.img,device=floppy")),
    # -- interfaces -------------------------------------------------------------------------------
    ("nic-user-mtu", generic("--network", "user,model=virtio,mtu.size=1400")),
    ("nic-bridge-options", generic("--network", "bridge=br0,model=virtio,driver.queues=4,link.state=down,"
                                   "rom.bar=off")),
    ("nic-network-default", generic("--network", "network=default,mac=52:54:00:12:34:56")),
    ("nic-e1000e", generic("--machine", "q35", "--network", "user,model=e1000e")),
    ("nic-rtl8139", generic("--network", "user,model=rtl8139")),
    ("nic-none", generic("--network", "none")),
    ("nic-two", generic("--network", "user,model=virtio", "--network", "user,model=e1000")),
    # -- serial, parallel, console ----------------------------------------------------------------
    ("serial-pty", generic("--serial", "pty", "--console", "pty,target.type=virtio")),
    ("serial-file", generic("--serial", f"file,path={WORK}/serial.log")),
    ("serial-unix", generic("--serial", f"unix,path={WORK}/serial.sock,mode=bind")),
    ("parallel-pty", generic("--machine", "pc", "--parallel", "pty")),
    ("console-virtio-only", generic("--serial", "none", "--console", "pty,target.type=virtio")),
    # -- host devices, panic, vsock, iommu --------------------------------------------------------
    # --hostdev looks the device up in the daemon's node devices, which a session daemon has not: the same
    # XML through --xml
    ("hostdev-pci", generic(*xpaths("./devices/hostdev", mode="subsystem", type="pci", managed="yes",
                                    **{"source/address/@domain": "0x0000", "source/address/@bus": "0x00",
                                       "source/address/@slot": "0x1f", "source/address/@function": "0x0"}))),
    ("hostdev-usb", generic(*xpaths("./devices/hostdev", mode="subsystem", type="usb", managed="yes",
                                    **{"source/vendor/@id": "0x1d6b", "source/product/@id": "0x0002"}))),
    ("panic-isa", generic("--panic", "isa")),
    ("vsock", generic("--vsock", "cid.auto=yes")),
    ("iommu-intel", generic("--machine", "q35", "--features", "ioapic.driver=qemu",
                            "--iommu", "model=intel,driver.intremap=on,driver.caching_mode=on")),
    ("iommu-virtio", generic("--machine", "q35", "--iommu", "model=virtio")),
    # -- guests with many devices (the benchmark's largest file) ---------------------------------
    ("many-devices", imported(
        "win11", "--machine", "q35", "--vcpus", "4,sockets=1,cores=2,threads=2", "--memory", "4096",
        "--boot", "uefi", "--disk", "size=4,bus=virtio,cache=none,io=native,discard=unmap",
        "--disk", "size=2,bus=sata", "--disk", f"{ISO},device=cdrom,bus=sata",
        "--controller", "scsi,model=virtio-scsi", "--disk", "size=2,bus=scsi",
        "--network", "user,model=virtio", "--network", "user,model=e1000e",
        "--graphics", "spice", "--video", "qxl", "--sound", "ich9", "--channel", "spicevmc",
        "--channel", "unix,target.type=virtio,name=org.qemu.guest_agent.0",
        "--redirdev", "usb,type=spicevmc", "--rng", "/dev/urandom", "--watchdog", "i6300esb",
        "--serial", "pty", "--serial", f"file,path={WORK}/serial2.log", "--input", "tablet",
        "--input", "keyboard,bus=virtio", "--memballoon", "virtio,stats.period=5", "--panic", "isa")),
    ("many-devices-linux", imported(
        "debian11", "--machine", "q35", "--vcpus", "2", "--memory", "1024", "--graphics", "vnc",
        "--video", "virtio", "--disk", "size=2,bus=virtio", "--disk", "size=2,bus=virtio,cache=writeback",
        "--network", "user,model=virtio", "--channel", "unix,target.type=virtio,name=org.qemu.guest_agent.0",
        "--rng", "/dev/urandom", "--serial", "pty", "--console", "pty,target.type=virtio",
        "--controller", "usb3", "--input", "tablet")),
]

# entries the --dumpxml step runs through the session daemon (define, start paused, dumpxml)
DUMPXML = ["os-generic", "os-debian11", "os-win10", "machine-pc", "machine-q35", "boot-uefi",
           "boot-direct-kernel", "graphics-spice", "graphics-vnc", "usb-companions-pc", "channel-spicevmc-agent",
           "disk-scsi", "disk-sata", "serial-file", "numa-two-cells", "hyperv-all", "tpm-crb",
           "many-devices-linux"]


def session_env() -> dict[str, str]:
    """virt-install/virsh as nobody, every libvirt directory under WORK (a private session daemon)."""
    return {**os.environ, "HOME": str(WORK), "XDG_RUNTIME_DIR": f"{SHORT}/run",
            "XDG_CONFIG_HOME": f"{SHORT}/cfg", "XDG_CACHE_HOME": f"{WORK}/cache",
            "XDG_DATA_HOME": f"{WORK}/data", "LC_ALL": "C.UTF-8"}


def as_nobody(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", "nobody", "--", *argv], env=session_env(), capture_output=True,
                          text=True, timeout=timeout, check=False)


def prepare() -> None:
    """The files the command lines name (virt-install checks that they exist)."""
    (WORK / "tree").mkdir(parents=True, exist_ok=True)
    for sub in ("cache", "data", "share"):
        (WORK / sub).mkdir(exist_ok=True)
    for short in (SHORT / "run", SHORT / "cfg"):
        short.mkdir(parents=True, exist_ok=True)
        os.chmod(short, 0o700)
    for path, size in ((ISO, "1M"), (KERNEL, "64K"), (INITRD, "64K"), (f"{WORK}/ro.raw", "1M"),
                       (f"{WORK}/floppy.img", "1440K"), (f"{WORK}/nvdimm.img", "512M"),
                       (f"{WORK}/tree/vmlinuz", "64K"), (f"{WORK}/tree/initrd.img", "64K")):
        if not Path(path).exists():
            subprocess.run(["truncate", "-s", size, path], check=True)
    if not Path(DISK).exists():
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", DISK, "1G"], check=True)
    nobody = pwd.getpwnam("nobody")
    for root, dirs, files in os.walk(WORK):
        for name in (*dirs, *files):
            os.chown(os.path.join(root, name), nobody.pw_uid, nobody.pw_gid)
    for top in (WORK, SHORT, SHORT / "run", SHORT / "cfg"):
        os.chown(top, nobody.pw_uid, nobody.pw_gid)


def command(name: str, args: list[str]) -> list[str]:
    return ["virt-install", "--connect", URI, "--print-xml", "1", "--dry-run", "--name", name,
            *(["--memory", "512"] if "--memory" not in args else []), *args]


def generate(selected: list[Entry]) -> list[str]:
    OUT.mkdir(parents=True, exist_ok=True)
    failed = []
    for name, args in selected:
        argv = command(name, args)
        r = as_nobody(argv)
        if r.returncode != 0 or "<domain" not in r.stdout:
            failed.append(f"{name}: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
            continue
        (OUT / f"{name}.xml").write_text(r.stdout)
        (OUT / f"{name}.cmd").write_text(shlex.join(argv) + "\n")
    return failed


def through_libvirt(name: str, store: bool, log: list[str]) -> str:
    """Define, start paused under TCG and (``store``) dump one corpus file; '' or the step that failed."""
    nobody = pwd.getpwnam("nobody").pw_uid
    virsh = ["virsh", "-c", URI]
    xml = (OUT / f"{name}.xml").read_text().replace('<domain type="kvm">', '<domain type="qemu">')
    for image in re.findall(r'<source file="([^"]+)"/>', xml):  # --dry-run made no disk (nor cloud-init ISO)
        if not Path(image).exists():
            Path(image).parent.mkdir(parents=True, exist_ok=True)
            fmt = "qcow2" if image.endswith(".qcow2") else "raw"
            subprocess.run(["qemu-img", "create", "-q", "-f", fmt, image, "64M"], check=True)
            os.chown(image, nobody, -1)
    guest = REPO / ".cache/guest"  # the tests' tiny guest (make guest): a kernel QEMU really loads
    if (guest / "vmlinuz").exists():
        xml = re.sub(r"<kernel>[^<]*</kernel>", f"<kernel>{guest / 'vmlinuz'}</kernel>", xml)
        xml = re.sub(r"<initrd>[^<]*</initrd>", f"<initrd>{guest / 'initrd.img'}</initrd>", xml)
    tmp = WORK / f"{name}.define.xml"
    tmp.write_text(xml)
    os.chown(tmp, nobody, -1)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        r = as_nobody([*virsh, *args])
        log.append(f"$ {shlex.join([*virsh, *args])}\n{r.stdout}{r.stderr}".rstrip())
        return r

    r = run("define", str(tmp))
    if r.returncode:
        return f"define: {r.stderr.strip()}"
    try:
        if store:
            (DUMP_OUT / f"{name}.inactive.xml").write_text(run("dumpxml", "--inactive", name).stdout)
        r = run("start", "--paused", name)
        if r.returncode:
            return f"start: {r.stderr.strip()}"
        if store:
            (DUMP_OUT / f"{name}.live.xml").write_text(run("dumpxml", name).stdout)
            (DUMP_OUT / f"{name}.migratable.xml").write_text(run("dumpxml", "--migratable", name).stdout)
        run("destroy", name)
        return ""
    finally:
        run("undefine", "--nvram", name)


def dumpxml(names: list[str]) -> list[str]:
    """Define, start paused under TCG and dump each file through the session daemon."""
    DUMP_OUT.mkdir(parents=True, exist_ok=True)
    log: list[str] = []
    failed = [f"{name}: {err}" for name in names if (OUT / f"{name}.xml").exists()
              and (err := through_libvirt(name, True, log))]
    (DUMP_OUT / "COMMANDS.txt").write_text(
        "# made by scripts/make-xml-corpus.py --dumpxml (libvirt 9.0 session daemon as user nobody, TCG);\n"
        "# each guest: the corpus file with type='qemu', then dumpxml --inactive, start --paused, dumpxml,\n"
        "# dumpxml --migratable, destroy, undefine --nvram\n\n" + "\n".join(log) + "\n")
    return failed


def _census_line(err: str) -> str:
    """'ok', or the step and libvirt's last error line."""
    if not err:
        return "ok"
    stage, last = err.split(":", 1)[0], err.splitlines()[-1].removeprefix("error: ")
    return last if last.startswith(f"{stage}: ") else f"{stage}: {last}"


def census(names: list[str]) -> None:
    """How many corpus files libvirt 9.0 itself defines and starts (paused, TCG) here: CENSUS.txt."""
    log: list[str] = []
    results: dict[str, str] = {}
    census_file = DUMP_OUT / "CENSUS.txt"
    if census_file.exists():  # a partial run updates the stored lines of the files it ran
        for line in census_file.read_text().splitlines()[2:]:
            name, _, rest = line.partition(": ")
            results[name] = "" if rest == "ok" else rest  # "define: ..." or "start: ..."
    results.update({name: through_libvirt(name, False, log) for name in names})
    results = {name: err for name, err in results.items() if (OUT / f"{name}.xml").exists()}
    defined = sum(1 for err in results.values() if not err.startswith("define"))
    started = sum(1 for err in results.values() if not err)
    head = f"# libvirt 9.0 (session daemon, TCG) over {len(results)} corpus files: {defined} define, {started} start"
    lines = [head, ""]
    lines += [f"{name}: {_census_line(err)}" for name, err in sorted(results.items())]
    DUMP_OUT.mkdir(parents=True, exist_ok=True)
    (DUMP_OUT / "CENSUS.txt").write_text("\n".join(lines) + "\n")
    print(lines[0])


def main(argv: list[str]) -> int:
    if os.geteuid() != 0:
        print("run as root (the session daemon runs as user nobody)", file=sys.stderr)
        return 1
    if shutil.which("virt-install") is None:
        print("virt-install is missing: apt-get install -y virtinst ovmf", file=sys.stderr)
        return 1
    want_dump = "--dumpxml" in argv or "--dumpxml-only" in argv
    words = [a for a in argv if not a.startswith("--")]
    selected = [e for e in MATRIX if not words or any(w in e[0] for w in words)]
    prepare()
    if "--dumpxml-only" not in argv:
        failed = generate(selected)
        print(f"{len(selected) - len(failed)} of {len(selected)} command lines made XML in {OUT}")
        for line in failed:
            print(f"  failed: {line}")
    if "--census" in argv:
        census([n for n, _ in selected])
    if want_dump:
        dfailed = dumpxml([n for n in DUMPXML if not words or any(w in n for w in words)])
        print(f"dumpxml of {len(DUMPXML)} guests through {URI} in {DUMP_OUT}")
        for line in dfailed:
            print(f"  failed: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
