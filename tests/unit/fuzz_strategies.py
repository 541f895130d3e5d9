"""Hypothesis strategies that build valid model objects (domain, network, pool, volume, snapshot).

Each draws values the way a user writes them (names with spaces, quotes and markup characters,
IPv6 listen addresses, passwords with XML's special characters) in the canonical form the codecs
read back, so ``parse(format(x)) == x`` is the property. PYVIRT_FUZZ_EXAMPLES sets the number of
examples per test (CI keeps the default small; run e.g. PYVIRT_FUZZ_EXAMPLES=2000 by hand).
"""
from __future__ import annotations

import ipaddress
import os
import string

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from pyvirt.model.domain import (
    CPU,
    OS,
    RNG,
    CharDev,
    Clock,
    CPUFeature,
    Devices,
    Disk,
    Domain,
    Features,
    Graphics,
    Interface,
    MemBalloon,
    Timer,
)
from pyvirt.model.network import Bridge as NetBridge
from pyvirt.model.network import DHCPHost, DHCPRange, DNSHost, Forward, IPConfig, Network
from pyvirt.model.snapshot_xml import DomainSnapshot, SnapshotDisk
from pyvirt.model.storage import Permissions, Pool, PoolSource, PoolTarget, Volume

EXAMPLES = int(os.environ.get("PYVIRT_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize="PYVIRT_FUZZ_SEED" not in os.environ,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# what users put in names and free text: letters, digits, punctuation XML must escape, non-ASCII
WORD = string.ascii_letters + string.digits + "-_.'\"<>&,:+=@ éß中"
PLAIN = string.ascii_lowercase + string.digits


def names(alphabet: str = WORD, max_size: int = 24) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=1, max_size=max_size).map(str.strip).filter(
        lambda s: bool(s) and s not in (".", ".."))


def text(max_size: int = 40) -> st.SearchStrategy[str]:
    return st.text(WORD + " ", min_size=1, max_size=max_size).map(str.strip).filter(bool)


uuids = st.uuids().map(str)
paths = st.lists(st.text(PLAIN + "-_.", min_size=1, max_size=8).filter(lambda s: s not in (".", "..")),
                 min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))
macs = st.tuples(*[st.integers(0, 255)] * 3).map(lambda t: "52:54:00:" + ":".join(f"{x:02x}" for x in t))
ipv4 = st.integers(1, 2**32 - 2).map(lambda n: str(ipaddress.IPv4Address(n)))
ipv6 = st.integers(1, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))


@st.composite
def disks(draw: st.DrawFn, count: int) -> tuple[Disk, ...]:
    out = []
    for i in range(count):
        cdrom = draw(st.booleans()) and i > 0
        out.append(Disk(
            target_dev=f"sd{chr(97 + i)}" if cdrom else f"vd{chr(97 + i)}",
            bus="sata" if cdrom else "virtio",
            device="cdrom" if cdrom else "disk",
            source=draw(st.none() | paths) if cdrom else draw(paths),
            format=draw(st.sampled_from(["raw", "qcow2"])) if not cdrom else "raw",
            cache=draw(st.none() | st.sampled_from(["none", "writeback", "unsafe"])),
            readonly=cdrom,
            serial=draw(st.none() | text(16)) if not cdrom else None,
        ))
    return tuple(out)


@st.composite
def interfaces(draw: st.DrawFn) -> tuple[Interface, ...]:
    macs_used = draw(st.lists(macs, max_size=3, unique=True))
    out = []
    for mac in macs_used:
        kind = draw(st.sampled_from(["user", "network", "bridge"]))
        source = {"user": (), "network": (("network", draw(names())),),
                  "bridge": (("bridge", draw(st.text(PLAIN, min_size=1, max_size=15))),)}[kind]
        out.append(Interface(type=kind, mac=mac, model=draw(st.sampled_from(["virtio", "e1000"])), source=source))
    return tuple(out)


@st.composite
def graphics(draw: st.DrawFn) -> tuple[Graphics, ...]:
    out = []
    for kind in draw(st.lists(st.sampled_from(["vnc", "spice"]), max_size=2, unique=True)):
        listen = draw(st.none() | ipv4 | ipv6)
        out.append(Graphics(kind, port=-1, autoport=True, listen_type="address" if listen else None,
                            listen_address=listen, passwd=draw(st.none() | text(12))))
    return tuple(out)


@st.composite
def domains(draw: st.DrawFn) -> Domain:
    vcpus = draw(st.integers(1, 8))
    memory = draw(st.integers(1, 2**22)) * 1024
    kernel = draw(st.none() | paths)
    cpu = None
    if draw(st.booleans()):
        feats = draw(st.lists(st.sampled_from(["pcid", "sse4.2", "avx2", "kvm_pv_eoi", "x2apic"]), unique=True,
                              max_size=3))
        cpu = CPU(mode="custom", match="exact", check="partial",
                  model=draw(st.sampled_from(["qemu64", "Skylake-Client", "EPYC-v4", "Cascadelake-Server-noTSX"])),
                  features=tuple(CPUFeature(f, draw(st.sampled_from(["require", "disable"]))) for f in feats))
    timers = draw(st.lists(st.sampled_from(["rtc", "pit", "hpet"]), unique=True, max_size=3))
    return Domain(
        name=draw(names()),
        uuid=draw(uuids),
        memory_kib=memory,
        type=draw(st.sampled_from(["kvm", "qemu"])),
        title=draw(st.none() | text()),
        description=draw(st.none() | text(80)),
        current_memory_kib=draw(st.none() | st.integers(1, memory // 1024).map(lambda m: m * 1024)),
        vcpus=vcpus,
        vcpu_placement="static",
        vcpu_current=draw(st.none() | st.integers(1, vcpus)),
        os=OS(machine=draw(st.sampled_from(["q35", "pc", "pc-q35-7.2"])), kernel=kernel,
              cmdline=draw(st.none() | text()) if kernel else None, boot=() if kernel else ("hd",)),
        features=Features(acpi=draw(st.booleans()), apic=draw(st.booleans())),
        cpu=cpu,
        clock=Clock(draw(st.sampled_from(["utc", "localtime"])), tuple(Timer(t, present=draw(st.booleans()))
                                                                          for t in timers)),
        on_poweroff=draw(st.sampled_from(["destroy", "restart", "preserve"])),
        on_reboot=draw(st.sampled_from(["restart", "destroy"])),
        on_crash=draw(st.sampled_from(["destroy", "restart", "preserve"])),
        devices=Devices(
            emulator="/usr/bin/qemu-system-x86_64",
            disks=draw(st.integers(0, 3).flatmap(disks)),
            interfaces=draw(interfaces()),
            serials=(CharDev("serial", "pty", target_type="isa-serial", target_port=0,
                             target_model="isa-serial"),),
            graphics=draw(graphics()),
            memballoon=MemBalloon(draw(st.sampled_from(["virtio", "none"]))),
            rngs=draw(st.sampled_from([(), (RNG("virtio"),)])),
        ),
    )


@st.composite
def networks(draw: st.DrawFn) -> Network:
    mode = draw(st.sampled_from([None, "nat", "route", "open"]))
    third = draw(st.integers(0, 255))
    hosts = draw(st.lists(st.tuples(macs, st.integers(2, 99), st.text(PLAIN, min_size=1, max_size=10)),
                          max_size=3, unique_by=(lambda h: h[0], lambda h: h[1], lambda h: h[2])))
    ip4 = IPConfig(address=f"10.{third}.7.1", prefix=24,
                   dhcp_ranges=(DHCPRange(f"10.{third}.7.100", f"10.{third}.7.200"),),
                   dhcp_hosts=tuple(DHCPHost(mac=m, name=n, ip=f"10.{third}.7.{i}") for m, i, n in hosts))
    ips = [ip4]
    if draw(st.booleans()):
        ips.append(IPConfig(address=f"fd00:{third:x}::1", prefix=64, family="ipv6"))
    dns = draw(st.lists(st.tuples(st.integers(2, 250), st.lists(st.text(PLAIN, min_size=1, max_size=10),
                                                                    min_size=1, max_size=2, unique=True)),
                        max_size=2, unique_by=lambda d: d[0]))
    return Network(
        name=draw(names()),
        uuid=draw(uuids),
        bridge=NetBridge(name=f"pvfz{third}", stp=True, delay=0),
        mac=draw(macs),
        forward=Forward(mode=mode) if mode else None,
        ips=tuple(ips),
        domain_name=draw(st.none() | st.just("example.lan")),
        dns_hosts=tuple(DNSHost(f"10.{third}.7.{i}", tuple(n)) for i, n in dns),
    )


perms = st.none() | st.builds(Permissions, mode=st.sampled_from(["0700", "0755", "0711"]),
                              owner=st.integers(0, 2000), group=st.integers(0, 2000))


@st.composite
def pools(draw: st.DrawFn) -> Pool:
    kind = draw(st.sampled_from(["dir", "fs", "netfs"]))
    source = PoolSource()
    if kind == "fs":
        source = PoolSource(devices=(draw(paths),), format=draw(st.sampled_from(["auto", "ext4", "xfs"])))
    elif kind == "netfs":
        host = draw(st.sampled_from(["nfs.example.com", "10.0.0.5", "2001:db8::5"]))
        source = PoolSource(host=host, dir=draw(paths), format=draw(st.sampled_from(["auto", "nfs"])),
                            port=draw(st.none() | st.integers(1, 65535)))
    return Pool(name=draw(names()), type=kind, uuid=draw(uuids),
                target=PoolTarget(draw(paths), draw(perms)), source=source)


volume_names = names().filter(lambda s: "/" not in s)


@st.composite
def volumes(draw: st.DrawFn) -> Volume:
    capacity = draw(st.integers(1, 2**50))
    return Volume(name=draw(volume_names), capacity=capacity, allocation=draw(st.none() | st.integers(0, capacity)),
                  format=draw(st.sampled_from(["raw", "qcow2"])), permissions=draw(perms))


@st.composite
def snapshots(draw: st.DrawFn) -> DomainSnapshot:
    targets = draw(st.lists(st.sampled_from(["vda", "vdb", "sda"]), unique=True, max_size=3))
    return DomainSnapshot(
        name=draw(names()),
        description=draw(st.none() | text()),
        memory=draw(st.none() | st.sampled_from(["no", "internal"])),
        disks=tuple(SnapshotDisk(t, draw(st.sampled_from(["no", "internal"]))) for t in targets),
    )
