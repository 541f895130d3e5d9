"""Every rejection of the domain XML codec names the thing and says what to do."""
from __future__ import annotations

import pytest

from pyvirt.errors import InvalidArgument, UnsupportedConfig, XMLSyntaxError
from pyvirt.model.domain_xml import parse_domain_xml


def make(devices: str = "", top: str = "", os: str = "", name: str = "t1", dtype: str = "kvm",
         memory: str = "<memory unit='MiB'>64</memory>", root_attrs: str = "") -> str:
    return (
        f"<domain type='{dtype}'{root_attrs}><name>{name}</name>{memory}"
        f"<os><type arch='x86_64' machine='q35'>hvm</type>{os}</os>{top}"
        f"<devices>{devices}</devices></domain>"
    )


def disk(inner: str = "", attrs: str = "type='file' device='disk'") -> str:
    return (f"<disk {attrs}><source file='/img/a.qcow2'/><target dev='vda' bus='virtio'/>{inner}</disk>")


def test_base_document_is_valid() -> None:
    assert parse_domain_xml(make(devices=disk())).name == "t1"


# (xml, error class, substrings that must all appear in the message)
CASES: list[tuple[str, str, type[Exception], tuple[str, ...]]] = [
    # -- document and root
    ("not-an-element", "<domain", XMLSyntaxError, ("not well-formed", "line 1", "column")),
    ("root-name", "<vm type='kvm'><name>x</name></vm>", InvalidArgument, ("<vm>", "<domain")),
    ("root-type-missing", make().replace("<domain type='kvm'>", "<domain>"), InvalidArgument, ("'type'", "kvm")),
    ("root-type-xen", make(dtype="xen"), UnsupportedConfig, ("<domain> in domain 't1'", "'xen'", "kvm")),
    ("root-attr", make(root_attrs=" foo='1'"), UnsupportedConfig, ("'foo'", "<domain>", "t1")),
    ("no-name", "<domain type='kvm'><memory>1</memory></domain>", InvalidArgument, ("<name>",)),
    ("no-memory", "<domain type='kvm'><name>x</name></domain>", InvalidArgument, ("<memory>", "'x'")),
    ("unknown-top", make(top="<frobnicator/>"), UnsupportedConfig, ("<frobnicator>", "t1", "remove")),
    ("numatune", make(top="<numatune/>"), UnsupportedConfig, ("<numatune>", "tuning")),
    ("cputune-iothreadpin", make(top="<cputune><iothreadpin iothread='1' cpuset='1'/></cputune>"),
     UnsupportedConfig, ("<cputune>/<iothreadpin>", "<vcpupin> and <emulatorpin>")),
    ("cputune-vcpupin-syntax", make(top="<cputune><vcpupin vcpu='0' cpuset='1-x'/></cputune>"), InvalidArgument,
     ("<vcpupin>", "invalid cpuset '1-x'", "0-3,^2")),
    ("cputune-vcpupin-empty", make(top="<cputune><vcpupin vcpu='0' cpuset='^1'/></cputune>"), InvalidArgument,
     ("<vcpupin>", "names no CPU")),
    ("cputune-vcpupin-beyond", make(top="<cputune><vcpupin vcpu='4' cpuset='1'/></cputune>"), InvalidArgument,
     ("<vcpupin>", "vCPU 4 does not exist")),
    ("cputune-vcpupin-twice", make(top="<cputune><vcpupin vcpu='0' cpuset='1'/><vcpupin vcpu='0' cpuset='0'/>"
                                       "</cputune>"), InvalidArgument, ("<vcpupin>", "pinned twice")),
    ("cputune-emulatorpin-twice", make(top="<cputune><emulatorpin cpuset='1'/><emulatorpin cpuset='0'/>"
                                           "</cputune>"), InvalidArgument, ("<emulatorpin>", "more than one")),
    ("cputune-shares-range", make(top="<cputune><shares>1</shares></cputune>"), InvalidArgument,
     ("<shares>", "out of range", "2 to 262144")),
    ("cputune-quota-range", make(top="<cputune><quota>5</quota></cputune>"), InvalidArgument,
     ("<quota>", "1000 to", "-1")),
    ("cputune-period-text", make(top="<cputune><period>soon</period></cputune>"), InvalidArgument,
     ("soon", "whole number")),
    ("memtune-soft-above-hard", make(top="<memtune><hard_limit>1024</hard_limit><soft_limit>2048</soft_limit>"
                                         "</memtune>"), InvalidArgument, ("<soft_limit>", "<hard_limit>")),
    ("memtune-swap", make(top="<memtune><swap_hard_limit>1</swap_hard_limit></memtune>"), UnsupportedConfig,
     ("<swap_hard_limit>", "<hard_limit> and <soft_limit>")),
    ("memtune-unit", make(top="<memtune><hard_limit unit='parsecs'>1</hard_limit></memtune>"), InvalidArgument,
     ("<hard_limit>", "parsecs")),
    ("blkiotune-weight", make(top="<blkiotune><weight>5000</weight></blkiotune>"), InvalidArgument,
     ("<weight>", "100 to 1000")),
    ("backing-locked", make(top="<memoryBacking><locked/></memoryBacking>"), UnsupportedConfig,
     ("<locked>", "<hugepages/> and <nosharepages/>")),
    ("backing-page-size", make(top="<memoryBacking><hugepages><page size='huge'/></hugepages></memoryBacking>"),
     InvalidArgument, ("<page>", "huge")),
    ("qemu-commandline", make(root_attrs=" xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'",
                              top="<qemu:commandline/>"), UnsupportedConfig, ("<qemu:commandline>", "command line")),
    ("text-in-root", make().replace("<devices>", "junk<devices>"), InvalidArgument, ("junk",)),
    ("two-names", make().replace("<name>t1</name>", "<name>t1</name><name>t2</name>"), InvalidArgument,
     ("<name>", "2 times")),
    ("resource-partition", make(top="<resource><partition>/other</partition></resource>"), InvalidArgument,
     ("/other", "<resource>")),
    # -- uuid
    ("uuid-bad", make(top="<uuid>1234</uuid>"), InvalidArgument, ("<uuid>", "1234", "32 hexadecimal")),
    ("uuid-zero", make(top="<uuid>00000000-0000-0000-0000-000000000000</uuid>"), InvalidArgument, ("all zeros",)),
    # -- memory and vcpu
    ("memory-zero", make(memory="<memory>0</memory>"), InvalidArgument, ("<memory>", "0", "t1")),
    ("memory-unit", make(memory="<memory unit='parsecs'>1</memory>"), InvalidArgument, ("parsecs", "<memory>")),
    ("memory-text", make(memory="<memory>lots</memory>"), InvalidArgument, ("lots", "<memory>")),
    ("memory-dumpcore", make(memory="<memory dumpCore='on'>64</memory>"), UnsupportedConfig, ("dumpCore",)),
    ("current-above", make(top="<currentMemory unit='MiB'>128</currentMemory>"), InvalidArgument,
     ("<currentMemory>", "more than")),
    ("max-no-slots", make(top="<maxMemory unit='GiB'>1</maxMemory>"), InvalidArgument, ("<maxMemory>", "slots")),
    ("max-below", make(top="<maxMemory slots='2' unit='MiB'>32</maxMemory>"), InvalidArgument,
     ("<maxMemory>", "less than")),
    ("vcpu-zero", make(top="<vcpu>0</vcpu>"), InvalidArgument, ("<vcpu>", "at least 1")),
    ("vcpu-current", make(top="<vcpu current='3'>2</vcpu>"), InvalidArgument, ("current", "between 1 and 2")),
    ("vcpu-auto", make(top="<vcpu placement='auto'>2</vcpu>"), UnsupportedConfig, ("auto", "static")),
    ("vcpu-cpuset", make(top="<vcpu cpuset='1-2'>2</vcpu>"), UnsupportedConfig, ("cpuset", "<vcpu>")),
    ("vcpu-text", make(top="<vcpu>two</vcpu>"), InvalidArgument, ("two", "whole number")),
    # -- os
    ("os-type", make().replace(">hvm<", ">linux<"), UnsupportedConfig, ("linux", "hvm")),
    ("os-arch", make().replace("x86_64", "aarch64"), UnsupportedConfig, ("aarch64", "x86_64")),
    ("os-arch-i686", make().replace("x86_64", "i686"), UnsupportedConfig, ("i686",)),
    ("os-machine", make().replace("machine='q35'", "machine='q 35'"), InvalidArgument, ("'q 35'", "machine")),
    ("os-machine-empty", make().replace("machine='q35'", "machine=''"), InvalidArgument, ("machine",)),
    ("boot-dev", make(os="<boot dev='usb'/>"), UnsupportedConfig, ("usb", "hd, cdrom, network, fd")),
    ("boot-dev-twice", make(os="<boot dev='hd'/><boot dev='hd'/>"), InvalidArgument, ("'hd'", "2 times")),
    ("boot-mixed", make(os="<boot dev='hd'/>", devices=disk("<boot order='1'/>")), InvalidArgument,
     ("<boot order", "<os><boot dev")),
    ("bootmenu-bool", make(os="<bootmenu enable='true'/>"), InvalidArgument, ("'enable'", "'yes' or 'no'")),
    ("bootmenu-timeout", make(os="<bootmenu enable='yes' timeout='3'/>"), UnsupportedConfig, ("timeout",)),
    ("initrd-no-kernel", make(os="<initrd>/boot/i</initrd>"), InvalidArgument, ("<kernel>",)),
    ("kernel-relative", make(os="<kernel>vmlinuz</kernel>"), InvalidArgument, ("vmlinuz", "absolute")),
    ("nvram-no-loader", make(os="<nvram>/var/x.fd</nvram>"), InvalidArgument, ("<nvram>", "<loader")),
    ("loader-type", make(os="<loader type='flash'>/fw.fd</loader>"), UnsupportedConfig, ("flash", "pflash")),
    ("os-firmware-child", make(os="<firmware><feature enabled='yes' name='secure-boot'/></firmware>"),
     UnsupportedConfig, ("<os>/<firmware>", "<loader>")),
    ("os-smbios", make(os="<smbios mode='host'/>"), UnsupportedConfig, ("<os>/<smbios>",)),
    ("firmware-attr", make().replace("<os>", "<os firmware='coreboot'>"), UnsupportedConfig, ("coreboot", "efi")),
    # -- lifecycle
    ("on-reboot", make(top="<on_reboot>explode</on_reboot>"), UnsupportedConfig, ("<on_reboot>", "explode", "restart")),
    ("on-crash", make(top="<on_crash>rename-restart</on_crash>"), UnsupportedConfig, ("<on_crash>", "coredump")),
    ("on-poweroff", make(top="<on_poweroff>x</on_poweroff>"), UnsupportedConfig, ("<on_poweroff>",)),
    # -- features, cpu, clock, pm
    ("feature-hyperv", make(top="<features><hyperv><evmcs2 state='on'/></hyperv></features>"), UnsupportedConfig,
     ("<features>/<hyperv>/<evmcs2>",)),
    ("feature-unknown", make(top="<features><gic version='3'/></features>"), UnsupportedConfig,
     ("<features>/<gic>",)),
    ("feature-vmport", make(top="<features><vmport state='maybe'/></features>"), InvalidArgument, ("'on' or 'off'",)),
    ("feature-apic-eoi", make(top="<features><apic eoi='on'/></features>"), UnsupportedConfig,
     ("eoi", "<features>/<apic>")),
    ("cpu-mode", make(top="<cpu mode='turbo'/>"), UnsupportedConfig, ("turbo", "host-passthrough")),
    ("cpu-custom-no-model", make(top="<cpu mode='custom'/>"), InvalidArgument, ("<model>",)),
    ("cpu-policy", make(top="<cpu mode='host-model'><feature policy='want' name='x'/></cpu>"), UnsupportedConfig,
     ("want", "require")),
    ("cpu-topology", make(top="<vcpu>2</vcpu><cpu><topology sockets='1' cores='1' threads='1'/></cpu>"),
     InvalidArgument, ("<topology>", "= 1", "<vcpu> is 2")),
    ("cpu-topology-missing", make(top="<cpu><topology sockets='1' cores='1'/></cpu>"), InvalidArgument,
     ("'threads'",)),
    ("cpu-numa", make(top="<cpu><numa/></cpu>"), InvalidArgument, ("<cpu>/<numa>", "no <cell>")),
    ("clock-offset", make(top="<clock offset='variable'/>"), UnsupportedConfig, ("variable", "utc")),
    ("timer-name", make(top="<clock><timer name='sundial'/></clock>"), UnsupportedConfig, ("sundial",)),
    ("timer-policy", make(top="<clock><timer name='rtc' tickpolicy='skip'/></clock>"), UnsupportedConfig, ("skip",)),
    ("timer-track", make(top="<clock><timer name='rtc' track='guest'/></clock>"), UnsupportedConfig, ("track",)),
    ("pm-bool", make(top="<pm><suspend-to-mem enabled='off'/></pm>"), InvalidArgument, ("'yes' or 'no'",)),
    # -- devices: named later releases
    ("hostdev", make(devices="<hostdev mode='subsystem' type='pci'/>"), UnsupportedConfig,
     ("<devices>/<hostdev>", "t1", "passthrough", "later release")),
    ("tpm", make(devices="<tpm model='tpm-crb'/>"), InvalidArgument, ("<devices>/<tpm>", "<backend> is missing")),
    ("tpm-passthrough", make(devices="<tpm><backend type='passthrough'><device path='/dev/tpm0'/></backend></tpm>"),
     UnsupportedConfig, ("<tpm>/<backend>", "passthrough", "type='emulator'")),
    ("tpm-encryption", make(devices="<tpm><backend type='emulator'><encryption secret='x'/></backend></tpm>"),
     UnsupportedConfig, ("<tpm>/<backend>/<encryption>",)),
    ("filesystem", make(devices="<filesystem/>"), InvalidArgument, ("<devices>/<filesystem>", "<source dir=")),
    ("unknown-device", make(devices="<frobnicator/>"), UnsupportedConfig, ("<devices>/<frobnicator>", "t1")),
    # -- disks
    ("disk-block-file", make(devices=disk(attrs="type='block' device='disk'")), UnsupportedConfig,
     ("type='block'", "<source dev=", "type='file'")),
    ("disk-file-dev", make(devices="<disk type='file'><source dev='/dev/sdb'/><target dev='vda'/></disk>"),
     UnsupportedConfig, ("<source file=", "type='block'")),
    ("disk-block-no-source", make(devices="<disk type='block'><target dev='vda'/></disk>"), InvalidArgument,
     ("<source dev", "block device")),
    ("disk-volume-half", make(devices="<disk type='volume'><source pool='default'/><target dev='vda'/></disk>"),
     InvalidArgument, ("'pool' and 'volume'",)),
    ("disk-volume-mode", make(devices="<disk type='volume'><source pool='p' volume='v' mode='host'/>"
                                      "<target dev='vda'/></disk>"), UnsupportedConfig, ("'mode'",)),
    ("disk-volume-no-source", make(devices="<disk type='volume'><target dev='vda'/></disk>"), InvalidArgument,
     ("<source pool=",)),
    ("disk-volume-bad-name", make(devices="<disk type='volume'><source pool='p' volume='a/b'/>"
                                          "<target dev='vda'/></disk>"), InvalidArgument, ("a/b", "'/'")),
    ("disk-index", make(devices=disk().replace("a.qcow2'", "a.qcow2' index='0'")), InvalidArgument, ("index",)),
    ("disk-network", make(devices=disk(attrs="type='network' device='disk'")), UnsupportedConfig,
     ("type='network'", "'volume'")),
    ("disk-floppy", make(devices=disk(attrs="type='file' device='floppy'")), UnsupportedConfig, ("floppy",)),
    ("disk-driver-attr", make(devices=disk("<driver name='qemu' foo='1'/>")), UnsupportedConfig,
     ("'foo'", "<devices>/<disk>/<driver>", "t1")),
    ("disk-format", make(devices=disk("<driver name='qemu' type='vmdk'/>")), UnsupportedConfig,
     ("vmdk", "qemu-img convert")),
    ("disk-cache", make(devices=disk("<driver name='qemu' cache='fast'/>")), UnsupportedConfig, ("fast", "writeback")),
    ("disk-io-native", make(devices=disk("<driver name='qemu' io='native'/>")), InvalidArgument, ("native", "cache")),
    ("disk-bus", make(devices=disk().replace("bus='virtio'", "bus='usb'")), UnsupportedConfig,
     ("'vda'", "usb", "virtio, sata, scsi, ide")),
    ("disk-no-target", make(devices="<disk type='file'><source file='/a'/></disk>"), InvalidArgument, ("<target>",)),
    ("disk-no-source", make(devices="<disk type='file'><target dev='vda'/></disk>"), InvalidArgument,
     ("<source file", "cdrom")),
    ("disk-relative", make(devices=disk().replace("/img/a.qcow2", "a.qcow2")), InvalidArgument, ("absolute",)),
    ("disk-dup", make(devices=disk() + disk()), InvalidArgument, ("'vda'", "2 disks")),
    ("disk-cdrom-virtio", make(devices="<disk device='cdrom'><target dev='vdb' bus='virtio'/></disk>"),
     InvalidArgument, ("cdrom", "virtio")),
    ("disk-iotune", make(devices=disk("<iotune/>")), UnsupportedConfig, ("<devices>/<disk>/<iotune>",)),
    ("disk-backing", make(devices=disk("<backingStore type='file'/>")), UnsupportedConfig, ("backing",)),
    ("disk-boot-order", make(devices=disk("<boot order='0'/>")), InvalidArgument, ("at least 1",)),
    ("disk-address-type", make(devices=disk("<address type='spapr-vio'/>")), UnsupportedConfig, ("spapr-vio",)),
    ("disk-address-attr", make(devices=disk("<address type='pci' unit='1'/>")), UnsupportedConfig,
     ("'unit'", "pci address")),
    ("disk-target-name", make(devices=disk().replace("dev='vda'", "dev='vda1'")), InvalidArgument, ("vda1",)),
    ("boot-order-dup", make(devices=disk("<boot order='1'/>") + "<interface type='user'><boot order='1'/></interface>"),
     InvalidArgument, ("boot order 1", "2 devices")),
    # -- controllers
    ("controller-type", make(devices="<controller type='fdc'/>"), UnsupportedConfig, ("fdc", "virtio-serial")),
    ("controller-dup", make(devices="<controller type='sata' index='0'/><controller type='sata' index='0'/>"),
     InvalidArgument, ("index 0", "2 controllers")),
    ("controller-driver", make(devices="<controller type='scsi'><driver queues='2'/></controller>"),
     UnsupportedConfig, ("<devices>/<controller>/<driver>",)),
    ("controller-pci-model", make(devices="<controller type='pci' index='1' model='pci-magic'/>"),
     UnsupportedConfig, ("pci-magic",)),
    # -- interfaces
    ("iface-type", make(devices="<interface type='vhostuser'/>"), UnsupportedConfig, ("vhostuser", "bridge")),
    ("iface-mac-format", make(devices="<interface type='user'><mac address='52:54:00:zz:00:01'/></interface>"),
     InvalidArgument, ("52:54:00:zz:00:01", "<mac>")),
    ("iface-mac-multicast", make(devices="<interface type='user'><mac address='01:00:5e:00:00:01'/></interface>"),
     InvalidArgument, ("multicast",)),
    ("iface-mac-dup", make(devices="<interface type='user'><mac address='52:54:00:00:00:01'/></interface>" * 2),
     InvalidArgument, ("52:54:00:00:00:01", "2 interfaces")),
    ("iface-model", make(devices="<interface type='user'><model type='ne2k_isa'/></interface>"), UnsupportedConfig,
     ("ne2k_isa", "e1000e")),
    ("iface-network-source", make(devices="<interface type='network'/>"), InvalidArgument, ("network=",)),
    ("iface-source-attr", make(devices="<interface type='network'><source network='d' portgroup='p'/></interface>"),
     UnsupportedConfig, ("'portgroup'",)),
    ("iface-vlan", make(devices="<interface type='bridge'><source bridge='br0'/><vlan/></interface>"),
     UnsupportedConfig, ("<devices>/<interface>/<vlan>",)),
    ("iface-link", make(devices="<interface type='user'><link state='sideways'/></interface>"), UnsupportedConfig,
     ("sideways",)),
    ("iface-direct-mode", make(devices="<interface type='direct'><source dev='eth0' mode='x'/></interface>"),
     UnsupportedConfig, ("mode", "vepa")),
    # -- chardevs
    ("chardev-type", make(devices="<serial type='tcp'/>"), UnsupportedConfig, ("tcp", "pty")),
    ("chardev-file-path", make(devices="<serial type='file'/>"), InvalidArgument, ("<source path",)),
    ("chardev-mode", make(devices="<channel type='unix'><source mode='listen'/>"
                                  "<target type='virtio' name='a'/></channel>"), UnsupportedConfig, ("listen", "bind")),
    ("channel-guestfwd", make(devices="<channel type='pty'><target type='guestfwd'/></channel>"),
     UnsupportedConfig, ("guestfwd",)),
    ("channel-name", make(devices="<channel type='pty'><target type='virtio'/></channel>"), InvalidArgument,
     ("needs a name",)),
    ("console-target", make(devices="<console type='pty'><target type='sclp'/></console>"), UnsupportedConfig,
     ("sclp",)),
    ("serial-target", make(devices="<serial type='pty'><target type='usb-serial'/></serial>"), UnsupportedConfig,
     ("usb-serial",)),
    ("chardev-append", make(devices="<serial type='file'><source path='/l' append='on'/></serial>"),
     UnsupportedConfig, ("'append'",)),
    ("chardev-log-bool", make(devices="<serial type='pty'><log file='/l' append='yes'/></serial>"), InvalidArgument,
     ("'on' or 'off'",)),
    # -- input, graphics, video, sound, audio
    ("input-type", make(devices="<input type='joystick' bus='usb'/>"), UnsupportedConfig, ("joystick",)),
    ("input-tablet-ps2", make(devices="<input type='tablet' bus='ps2'/>"), InvalidArgument, ("tablet", "ps2")),
    ("graphics-type", make(devices="<graphics type='sdl'/>"), UnsupportedConfig, ("sdl", "vnc")),
    ("graphics-keymap", make(devices="<graphics type='vnc' keymap='de'/>"), UnsupportedConfig, ("keymap",)),
    ("graphics-listen-clash", make(devices="<graphics type='vnc' listen='1.2.3.4'>"
                                           "<listen type='address' address='5.6.7.8'/></graphics>"),
     InvalidArgument, ("disagree",)),
    ("graphics-two-listens", make(devices="<graphics type='vnc'><listen type='none'/><listen type='none'/></graphics>"),
     InvalidArgument, ("<listen>",)),
    ("graphics-port", make(devices="<graphics type='vnc' port='70000'/>"), InvalidArgument, ("70000",)),
    ("graphics-gl", make(devices="<graphics type='spice'><gl enable='maybe'/></graphics>"), InvalidArgument,
     ("'enable'", "<gl>")),
    ("graphics-gl-vnc", make(devices="<graphics type='vnc'><gl enable='yes'/></graphics>"), UnsupportedConfig,
     ("<graphics>/<gl>",)),
    ("spice-compression", make(devices="<graphics type='spice'><image compression='zip'/></graphics>"),
     UnsupportedConfig, ("zip",)),
    ("video-model", make(devices="<video><model type='vmvga'/></video>"), UnsupportedConfig, ("vmvga",)),
    ("video-no-model", make(devices="<video/>"), InvalidArgument, ("<model>",)),
    ("video-accel", make(devices="<video><model type='virtio'><acceleration accel2d='yes'/></model></video>"),
     UnsupportedConfig, ("accel2d", "<acceleration>")),
    ("video-two-primary", make(devices="<video><model type='vga' primary='yes'/></video>"
                                       "<video><model type='virtio' primary='yes'/></video>"),
     InvalidArgument, ("primary",)),
    ("sound-codec", make(devices="<sound model='ich9'><codec type='micro'/></sound>"), UnsupportedConfig,
     ("<codec>", "codecs")),
    ("sound-model", make(devices="<sound model='pcspk'/>"), UnsupportedConfig, ("pcspk",)),
    ("audio-type", make(devices="<audio id='1' type='pulseaudio'/>"), UnsupportedConfig, ("pulseaudio", "spice")),
    ("audio-dup", make(devices="<audio id='1' type='none'/><audio id='1' type='spice'/>"), InvalidArgument,
     ("id 1",)),
    # -- the rest
    ("redirdev-tcp", make(devices="<redirdev bus='usb' type='tcp'/>"), UnsupportedConfig, ("tcp", "spicevmc")),
    ("balloon-model", make(devices="<memballoon model='xen'/>"), UnsupportedConfig, ("xen",)),
    ("balloon-none-stats", make(devices="<memballoon model='none'><stats period='5'/></memballoon>"),
     InvalidArgument, ("none",)),
    ("balloon-two", make(devices="<memballoon model='none'/><memballoon model='none'/>"), InvalidArgument,
     ("<memballoon>", "2 times")),
    ("rng-egd", make(devices="<rng model='virtio'><backend model='egd' type='udp'/></rng>"), UnsupportedConfig,
     ("type",)),
    ("rng-backend", make(devices="<rng model='virtio'><backend model='egd'/></rng>"), UnsupportedConfig,
     ("egd", "random")),
    ("rng-path", make(devices="<rng model='virtio'><backend model='random'>/dev/zero</backend></rng>"),
     UnsupportedConfig, ("/dev/zero", "/dev/urandom")),
    ("rng-builtin-path", make(devices="<rng model='virtio'><backend model='builtin'>/dev/random</backend></rng>"),
     InvalidArgument, ("builtin", "no path")),
    ("watchdog-model", make(devices="<watchdog model='diag288'/>"), UnsupportedConfig, ("diag288", "i6300esb")),
    ("watchdog-action", make(devices="<watchdog model='i6300esb' action='explode'/>"), UnsupportedConfig,
     ("explode", "inject-nmi")),
    ("panic-model", make(devices="<panic model='s390'/>"), UnsupportedConfig, ("s390",)),
    ("seclabel-type", make(top="<seclabel type='weird'/>"), UnsupportedConfig, ("weird",)),
    ("seclabel-child", make(top="<seclabel type='none'><foo/></seclabel>"), UnsupportedConfig, ("<seclabel>/<foo>",)),
    ("metadata-text", make(top="<metadata>hello</metadata>"), InvalidArgument, ("<metadata>",)),
    ("title-newline", make(top="<title>a\nb</title>"), InvalidArgument, ("<title>", "line break")),
]


@pytest.mark.parametrize(("xml", "cls", "needles"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rejected(xml: str, cls: type[Exception], needles: tuple[str, ...]) -> None:
    with pytest.raises(cls) as info:
        parse_domain_xml(xml)
    msg = str(info.value)
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"


def test_case_ids_are_unique() -> None:
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


def test_syntax_error_position() -> None:
    xml = "<domain type='qemu'>\n  <name>x</name>\n  <memory>1</memory\n</domain>"
    with pytest.raises(XMLSyntaxError) as info:
        parse_domain_xml(xml)
    assert str(info.value).startswith("domain XML is not well-formed: ")
    assert "line 4, column 1 (check the end of line 3)" in str(info.value)
    assert info.value.code == "xml-syntax"


@pytest.mark.parametrize("name", ["", "a/b", ".", "..", "tab\there", "x" * 65, " lead"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_domain_xml(make(name=name.replace("\t", "&#9;")))
    assert "domain name" in str(info.value)


def test_unsupported_messages_name_domain_and_path() -> None:
    with pytest.raises(UnsupportedConfig) as info:
        parse_domain_xml(make(name="web1", devices="<hostdev mode='subsystem' type='pci'/>"))
    assert str(info.value).startswith("unsupported element <devices>/<hostdev> in domain 'web1': ")
    with pytest.raises(UnsupportedConfig) as info:
        parse_domain_xml(make(name="web1", devices=disk("<driver name='qemu' foo='x'/>")))
    assert str(info.value).startswith("unsupported attribute 'foo' on <devices>/<disk>/<driver> in domain 'web1'")


def test_unsupported_values_are_unsupported_config() -> None:
    """Known-but-unhandled values use UnsupportedConfig (a subclass of InvalidArgument)."""
    with pytest.raises(UnsupportedConfig):
        parse_domain_xml(make(devices=disk(attrs="type='volume'")))
    assert issubclass(UnsupportedConfig, InvalidArgument)


def test_comments_are_ignored_and_input_not_str_rejected() -> None:
    d = parse_domain_xml(make(devices="<!-- a comment -->" + disk()))
    assert len(d.devices.disks) == 1
    with pytest.raises(InvalidArgument):
        parse_domain_xml(b"<domain/>")  # type: ignore[arg-type]
