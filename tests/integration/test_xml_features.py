"""Features of the XML virt-install writes, each run by real QEMU through a real daemon: SPICE
tlsPort (with and without TLS certificates), the USB companion set, hyperv, TPM through swtpm,
memory hotplug and NUMA, nvme, shares, panic/vsock/iommu, resource partitions.

A feature that has no guest-visible effect worth booting for starts paused (-S) under TCG: a QEMU
that accepted every option is alive with its monitor open; the argv QEMU really got is read from
/proc/PID/cmdline. Where the tiny guest's kernel has the driver built in (TPM CRB/TIS), the guest
boots and the test reads what it sees from its console.
"""
from __future__ import annotations

import pwd
import re
import shutil
import socket
import ssl
import subprocess
import time
import uuid as uuidlib
from pathlib import Path

import pytest

from pyvirt.host.cgroup import CgroupV2
from tests.guest.build import GuestImage

from .conftest import DaemonHandle, domain_xml, fails, ok, qemu_pids_under

pytestmark = pytest.mark.integration


def q35(name: str, devices: str = "", *, features: str = "", top: str = "", cpu: str = "",
        memory: str = "<memory unit='MiB'>128</memory>", vcpus: int = 1) -> str:
    """A q35 domain with no disk that starts paused (nothing to boot)."""
    return (f"<domain type='qemu'><name>{name}</name>{top}{memory}<vcpu>{vcpus}</vcpu>"
            "<os><type arch='x86_64' machine='q35'>hvm</type></os>"
            f"<features><acpi/>{features}</features>{cpu}<devices>{devices}"
            "<memballoon model='none'/></devices></domain>")


def define(d: DaemonHandle, tmp_path: Path, xml: str) -> str:
    path = tmp_path / f"{uuidlib.uuid4().hex}.xml"
    path.write_text(xml)
    ok(d, "define", str(path))
    name = re.search(r"<name>(.*?)</name>", xml)
    assert name is not None
    return name.group(1)


def qemu_argv(d: DaemonHandle) -> list[str]:
    (pid,) = qemu_pids_under(d.root)
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]


def gone(d: DaemonHandle, name: str) -> None:
    d.cli("destroy", name)
    ok(d, "undefine", name)
    assert not qemu_pids_under(d.root)


# ----------------------------------------------------------------------------- SPICE
SPICE = ("<graphics type='spice' port='-1' tlsPort='-1' autoport='yes' listen='127.0.0.1'>"
         "<image compression='off'/></graphics>")


def spice_ok() -> bool:
    out = subprocess.run(["qemu-system-x86_64", "-spice", "help"], capture_output=True, text=True, check=False)
    return "disable-ticketing" in out.stdout + out.stderr


def test_spice_tls_port_minus_one_without_certificates(daemon: DaemonHandle, tmp_path: Path) -> None:
    if not spice_ok():
        pytest.skip("this host's QEMU has no SPICE module")
    name = define(daemon, tmp_path, q35("sp1", SPICE))
    try:
        ok(daemon, "start", name, "--paused")
        (spice,) = values(qemu_argv(daemon), "-spice")
        assert "tls-port" not in spice and re.search(r"port=\d+,addr=127\.0\.0\.1", spice), spice
        live = ok(daemon, "dumpxml", name)
        assert re.search(r"<graphics type='spice' port='\d+' tlsPort='-1' autoport='yes'", live), live
        assert "no SPICE TLS certificates" in ok(daemon, "dominfo", name)
        assert "tlsPort='-1'" in ok(daemon, "dumpxml", "--inactive", name)
    finally:
        gone(daemon, name)


def test_fixed_tls_port_without_certificates_fails_at_start(daemon: DaemonHandle, tmp_path: Path) -> None:
    if not spice_ok():
        pytest.skip("this host's QEMU has no SPICE module")
    name = define(daemon, tmp_path, q35("sp2", "<graphics type='spice' port='5931' tlsPort='5932'/>"))
    try:
        assert "spice_tls_x509_cert_dir" in fails(daemon, "start", name)
        assert not qemu_pids_under(daemon.root)
    finally:
        gone(daemon, name)


def _certificates(where: Path) -> None:
    where.mkdir()
    subj = ["-subj", "/CN=pyvirt-test"]
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", *subj,
                    "-keyout", str(where / "server-key.pem"), "-out", str(where / "server-cert.pem")],
                   check=True, capture_output=True)
    shutil.copy(where / "server-cert.pem", where / "ca-cert.pem")


def test_spice_tls_port_with_certificates_speaks_tls(fresh_daemon: DaemonHandle, tmp_path: Path) -> None:
    if not spice_ok() or shutil.which("openssl") is None:
        pytest.skip("needs QEMU's SPICE module and openssl")
    d = fresh_daemon
    certs = tmp_path / "certs"
    _certificates(certs)
    settings = d.root / "etc/pyvirt/pyvirt.toml"
    settings.write_text(settings.read_text() + f"spice_tls_x509_cert_dir = '{certs}'\n")
    d.stop()
    d.start()
    name = define(d, tmp_path, q35("sp3", SPICE))
    try:
        ok(d, "start", name, "--paused")
        (spice,) = values(qemu_argv(d), "-spice")
        port = re.search(r"tls-port=(\d+)", spice)
        assert port is not None and "x509-dir=" in spice, spice
        live = ok(d, "dumpxml", name)
        assert f"tlsPort='{port.group(1)}'" in live, live
        ctx = ssl.create_default_context(cafile=str(certs / "ca-cert.pem"))
        ctx.check_hostname = False
        with socket.create_connection(("127.0.0.1", int(port.group(1))), timeout=10) as raw, \
                ctx.wrap_socket(raw) as tls:
            assert tls.version() is not None  # the handshake went through with our certificate
        vm_dir = next((d.root / "run/pyvirt/qemu").iterdir())
        key = vm_dir / "spice-tls/server-key.pem"
        assert oct(key.stat().st_mode & 0o777) == "0o400"
        ok(d, "destroy", name)
        assert not vm_dir.exists()
    finally:
        gone(d, name)


# ----------------------------------------------------------------------------- USB
COMPANIONS = """
<controller type="usb" model="ich9-ehci1"/>
<controller type="usb" model="ich9-uhci1"><master startport="0"/></controller>
<controller type="usb" model="ich9-uhci2"><master startport="2"/></controller>
<controller type="usb" model="ich9-uhci3"><master startport="4"/></controller>
<input type="tablet" bus="usb"/>
"""


@pytest.mark.parametrize("model", ["companions", "qemu-xhci", "nec-xhci", "none"])
def test_usb_controllers_start(daemon: DaemonHandle, tmp_path: Path, model: str) -> None:
    devices = COMPANIONS if model == "companions" else f"<controller type='usb' model='{model}'/>"
    name = define(daemon, tmp_path, q35(f"usb-{model}", devices))
    try:
        ok(daemon, "start", name, "--paused")
        devs = values(qemu_argv(daemon), "-device")
        if model == "companions":
            assert "ich9-usb-uhci3,masterbus=usb.0,firstport=4" in devs, devs
        elif model == "none":
            assert not [x for x in devs if "usb" in x], devs
        live = ok(daemon, "dumpxml", name)
        assert (live.count("<master startport=") == 3) == (model == "companions")
    finally:
        gone(daemon, name)


# ----------------------------------------------------------------------------- Windows features
WINDOWS = ("<hyperv mode='custom'><relaxed state='on'/><vapic state='on'/><spinlocks state='on' retries='8191'/>"
           "<vpindex state='on'/><synic state='on'/><stimer state='on'/></hyperv><kvm><hidden state='on'/></kvm>"
           "<vmport state='off'/><smm state='on'/>")


def test_windows_features_under_tcg_start_without_enlightenments_and_say_so(daemon: DaemonHandle,
                                                                          tmp_path: Path) -> None:
    xml = q35("win1", features=WINDOWS).replace(
        "</features>", "</features><clock offset='localtime'><timer name='hypervclock' present='yes'/>"
                       "<timer name='rtc' tickpolicy='catchup'/><timer name='hpet' present='no'/></clock>")
    name = define(daemon, tmp_path, xml)
    try:
        ok(daemon, "start", name, "--paused")
        argv = qemu_argv(daemon)
        assert not [a for a in argv if "hv-" in a], argv  # hv-vpindex would make TCG's QEMU exit
        assert "vmport=off" in values(argv, "-machine")[0] and "smm=on" in values(argv, "-machine")[0]
        info = ok(daemon, "dominfo", name)
        assert "Hyper-V enlightenments (relaxed, vapic, spinlocks, vpindex, synic, stimer)" in info, info
        assert "hypervclock" in info and "only KVM" in info
        live = ok(daemon, "dumpxml", name)
        assert "<hyperv mode='custom'>" in live and "<hidden state='on'/>" in live
    finally:
        gone(daemon, name)


# ----------------------------------------------------------------------------- TPM
TPM_CRB = "<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>"


def swtpm_pids() -> list[int]:
    out = []
    for pid in (p for p in Path("/proc").iterdir() if p.name.isdigit()):
        try:
            if (pid / "comm").read_text().strip() == "swtpm" and Path(f"/proc/{pid.name}/fd").exists():
                out.append(int(pid.name))
        except OSError:
            continue
    return out


@pytest.mark.skipif(shutil.which("swtpm") is None, reason="needs swtpm (Debian package swtpm)")
@pytest.mark.parametrize("model", ["tpm-crb", "tpm-tis"])
def test_tpm_guest_sees_dev_tpm0(daemon: DaemonHandle, guest: GuestImage, tmp_path: Path, model: str) -> None:
    tpm = TPM_CRB.replace("tpm-crb", model)
    # the bzImage: booted through PVH (guest.kernel) this QEMU hands q35 guests unreadable ACPI tables, and
    # the TPM is found through ACPI (TPM2 table, MSFT0101)
    xml = domain_xml(f"tpm-{model}", guest, machine="q35", extra_devices=tpm)
    name = define(daemon, tmp_path, xml.replace(str(guest.kernel), str(guest.bzimage)))
    uuid = re.search(r"<uuid>(.*?)</uuid>", ok(daemon, "dumpxml", name)).group(1)  # type: ignore[union-attr]
    state = daemon.root / "var/lib/pyvirt/swtpm" / uuid
    before = set(swtpm_pids())
    try:
        ok(daemon, "start", name)
        (tpm_pid,) = set(swtpm_pids()) - before
        status = Path(f"/proc/{tpm_pid}/status").read_text()
        uid = re.search(r"^Uid:\s+(\d+)", status, re.M).group(1)  # type: ignore[union-attr]
        assert pwd.getpwuid(int(uid)).pw_name == "pyvirt-qemu"  # swtpm is not root
        assert oct(state.stat().st_mode & 0o777) == "0o700" and state.stat().st_uid == int(uid)
        daemon.wait_serial(name)
        rc, out = daemon.guest_run(name, "ls /dev/tpm0 /dev/tpmrm0 && cat /sys/class/tpm/tpm0/tpm_version_major")
        assert rc == 0 and out.split()[-1] == "2", out
        ok(daemon, "destroy", name)
        assert tpm_pid not in swtpm_pids()  # gone with the guest
        assert (state / "tpm2-00.permall").exists()  # the state stays for the next start
        assert not qemu_pids_under(daemon.root)
    finally:
        daemon.cli("destroy", name)
        ok(daemon, "undefine", name)
    assert not state.exists()  # undefine takes the TPM state with it
    assert set(swtpm_pids()) <= before


def test_tpm_without_swtpm_defines_and_fails_at_start_naming_the_package(fresh_daemon: DaemonHandle,
                                                                         tmp_path: Path) -> None:
    d = fresh_daemon
    settings = d.root / "etc/pyvirt/pyvirt.toml"
    settings.write_text(settings.read_text() + "swtpm_binary = '/nonexistent/swtpm'\n")
    d.stop()
    d.start()
    name = define(d, tmp_path, q35("tpm-none", TPM_CRB))
    before = set(swtpm_pids())
    err = fails(d, "start", name)
    assert "Debian package swtpm" in err and "apt-get install swtpm" in err, err
    assert not qemu_pids_under(d.root) and set(swtpm_pids()) <= before
    assert not (d.root / "var/lib/pyvirt/swtpm").exists() or not any((d.root / "var/lib/pyvirt/swtpm").iterdir())
    assert not any((d.root / "run/pyvirt/qemu").iterdir())
    assert ok(d, "domstate", name).strip() == "shut off"
    ok(d, "undefine", name)


# ----------------------------------------------------------------------------- memory hotplug, NUMA
NUMA = ("<cpu><numa><cell id='0' cpus='0' memory='131072'/><cell id='1' cpus='1' memory='131072'/></numa></cpu>")
DIMM = "<memory model='dimm'><target><size unit='MiB'>128</size><node>1</node></target></memory>"
VMEM = ("<memory model='virtio-mem'><target><size unit='MiB'>256</size><node>0</node>"
        "<block unit='KiB'>2048</block><requested unit='MiB'>128</requested></target></memory>")


def test_numa_guest_with_memory_devices_and_a_dimm_plugged_live(daemon: DaemonHandle, guest: GuestImage,
                                                                 tmp_path: Path) -> None:
    xml = domain_xml("mem1", guest, machine="q35", extra_devices=DIMM + VMEM)
    xml = xml.replace(str(guest.kernel), str(guest.bzimage or guest.kernel))  # ACPI: see the TPM test
    xml = xml.replace("<memory unit='MiB'>128</memory>", "<maxMemory slots='4' unit='MiB'>2048</maxMemory>")
    xml = xml.replace("<vcpu>1</vcpu>", "<vcpu>2</vcpu>" + NUMA)
    name = define(daemon, tmp_path, xml)
    try:
        inactive = ok(daemon, "dumpxml", name)
        assert "<memory unit='KiB'>655360</memory>" in inactive  # 2 x 128 MiB cells + 128 + 256 MiB devices
        ok(daemon, "start", name)
        argv = qemu_argv(daemon)
        assert values(argv, "-m") == ["size=262144k,slots=4,maxmem=2097152k"]
        assert len(values(argv, "-numa")) == 2
        daemon.wait_serial(name)
        rc, out = daemon.guest_run(name, "ls -d /sys/devices/system/node/node*; ls /sys/devices/system/memory | "
                                         "grep -c memory")
        assert rc == 0 and "/sys/devices/system/node/node1" in out, out
        blocks = int(out.split()[-1])
        dimm = tmp_path / "dimm.xml"
        dimm.write_text("<memory model='dimm'><target><size unit='MiB'>128</size><node>0</node></target></memory>")
        assert "Device attached successfully" in ok(daemon, "attach-device", name, str(dimm), "--live")
        live = ok(daemon, "dumpxml", name)
        assert live.count("<memory model='dimm'>") == 2 and "<memory unit='KiB'>786432</memory>" in live
        deadline = time.monotonic() + 20  # the guest handles the ACPI hotplug notification on its own time
        while True:
            rc, out = daemon.guest_run(name, "ls /sys/devices/system/memory | grep -c memory")
            if (rc == 0 and int(out.split()[-1]) > blocks) or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert rc == 0 and int(out.split()[-1]) > blocks, out  # the guest found the new DIMM's memory blocks
        assert ok(daemon, "dumpxml", "--inactive", name).count("<memory model='dimm'>") == 1  # --live only
    finally:
        gone(daemon, name)


def test_nvdimm_defines_and_is_refused_at_start(daemon: DaemonHandle, tmp_path: Path) -> None:
    nv = ("<memory model='nvdimm'><source><path>/tmp/nv.img</path></source><target><size unit='MiB'>128</size>"
          "<node>0</node></target></memory>")
    name = define(daemon, tmp_path, q35("nv1", nv, top="<maxMemory slots='2' unit='MiB'>1024</maxMemory>",
                                        memory="<memory unit='MiB'>256</memory>"))
    try:
        assert "by path" in fails(daemon, "start", name)
        assert not qemu_pids_under(daemon.root)
    finally:
        gone(daemon, name)


# ----------------------------------------------------------------------------- shares, nvme, iommu, vsock, partition
SHARED_RAM = "<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>"


def helper_pids(comm: str) -> list[int]:
    out = []
    for pid in (p for p in Path("/proc").iterdir() if p.name.isdigit()):
        try:
            if (pid / "comm").read_text().strip() == comm:
                out.append(int(pid.name))
        except OSError:
            continue
    return out


def test_virtiofs_share_is_served_by_virtiofsd_and_ends_with_the_guest(daemon: DaemonHandle, tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    fs = (f"<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/><source dir='{share}'/>"
          "<target dir='hostshare'/></filesystem>")
    name = define(daemon, tmp_path, q35("vfs1", fs, top=SHARED_RAM))
    before = set(helper_pids("virtiofsd"))
    try:
        ok(daemon, "start", name, "--paused")  # vhost-user-fs talks to virtiofsd while QEMU sets the device up
        argv = qemu_argv(daemon)
        assert any(a.startswith("vhost-user-fs-pci,id=fs0,chardev=chr-vu-fs0,tag=hostshare") for a in argv), argv
        assert not [a for a in argv if str(share) in a]  # QEMU is not told the directory
        assert '"share":true' in " ".join(values(argv, "-object"))
        served = set(helper_pids("virtiofsd")) - before  # virtiofsd and its sandboxed child
        assert served and all(str(share) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                              for pid in served)
        ok(daemon, "destroy", name)
        assert not served & set(helper_pids("virtiofsd"))
    finally:
        gone(daemon, name)


def test_9p_share_defines_and_is_refused_at_start(daemon: DaemonHandle, tmp_path: Path) -> None:
    fs = "<filesystem type='mount' accessmode='mapped'><source dir='/srv'/><target dir='p9'/></filesystem>"
    name = define(daemon, tmp_path, q35("p9", fs))
    try:
        assert "9p share" in fails(daemon, "start", name)
        assert not qemu_pids_under(daemon.root)
    finally:
        gone(daemon, name)


def test_vsock_without_vhost_vsock_fails_at_start_naming_it(daemon: DaemonHandle, tmp_path: Path) -> None:
    if Path("/dev/vhost-vsock").exists():
        pytest.skip("this host has /dev/vhost-vsock: the refusal is for hosts without it")
    name = define(daemon, tmp_path, q35("vs1", "<vsock model='virtio'><cid auto='yes'/></vsock>"))
    try:
        err = fails(daemon, "start", name)
        assert "/dev/vhost-vsock" in err and "modprobe vhost_vsock" in err, err
        assert not qemu_pids_under(daemon.root)
    finally:
        gone(daemon, name)


def test_nvme_disk_iommu_panic_and_partition_start(daemon: DaemonHandle, tmp_path: Path) -> None:
    img = tmp_path / "n.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "16M"], check=True)
    devices = (f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{img}'/>"
               "<target dev='sda' bus='nvme'/></disk>"
               "<iommu model='intel'><driver intremap='on' caching_mode='on' iotlb='on' aw_bits='48'/></iommu>"
               "<panic model='isa'><address type='isa' iobase='0x505'/></panic>")
    name = define(daemon, tmp_path, q35("nv2", devices, top="<resource><partition>/machine</partition></resource>"))
    try:
        ok(daemon, "start", name, "--paused")
        devs = values(qemu_argv(daemon), "-device")
        assert devs[0].startswith("intel-iommu,") and any(x.startswith("nvme-ns,bus=nvme0,nsid=1") for x in devs)
        assert "pvpanic,id=panic0,ioport=0x505" in devs
        assert "<partition>/machine</partition>" in ok(daemon, "dumpxml", name)
        info = ok(daemon, "dominfo", name)
        support = CgroupV2().support()
        if support.usable:
            assert support.mount is not None and (support.mount / "machine.slice" / name).is_dir()
        else:
            assert "<resource><partition>/machine</partition> is not applied" in info, info
    finally:
        gone(daemon, name)
