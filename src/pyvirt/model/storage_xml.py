"""libvirt storage pool and volume XML <-> ``model.storage``.

Output follows `virsh pool-dumpxml` / `vol-dumpxml` of libvirt 9: sizes in
``unit='bytes'``, a pool's capacity/allocation/available always present (0
when the pool is not running), the <source> elements each pool type uses (an
empty <source> is written open and closed, as libvirt does), and <target>
with its <permissions>. Parsing is strict (``xml_util.Reader``): what pyvirt
cannot honour is an error naming the element, never silently dropped.

Accepted and ignored on input, because they are live facts: a pool's
<capacity>/<allocation>/<available>, a volume's <source> (LVM extents) and
<target><timestamps>, <compat>1.1</compat> (qemu-img's default), and
<permissions> inside <backingStore>.

Defaults are filled while parsing, so the model is explicit and
``parse(format(x)) == x``: the source format of fs/netfs pools is 'auto', of
logical pools 'lvm2', of disk pools 'unknown'; a logical pool's VG name is the
pool name and its target path /dev/VG.

A request (``format_pool_request_xml``, ``format_volume_request_xml``) is the
other layout of the same objects: only what was given, in the order virsh's
pool-define-as / vol-create-as build it (their ``--print-xml``), leaving the
defaults to the parser above.
"""
from __future__ import annotations

import re
from dataclasses import replace

from ..errors import InvalidArgument, UnsupportedConfig
from .storage import (
    JSON_FILENAME_HINT,
    POOL_TYPES,
    VOLUME_FORMATS,
    BackingStore,
    Permissions,
    Pool,
    PoolInfo,
    PoolSource,
    PoolTarget,
    Volume,
    is_json_filename,
)
from .tokens import control_char, source_host_problem
from .units import scale
from .xml_doc import open_document, read_name, read_uuid
from .xml_doc import with_path as _err
from .xml_util import Context, Hint, Node, Reader, node, parse_xml, render

__all__ = [
    "POOL_SOURCE_FORMATS", "format_pool_request_xml", "format_pool_xml", "format_volume_request_xml",
    "format_volume_xml", "parse_pool_xml", "parse_volume_xml", "volume_name_problem",
]

# Source formats each pool type takes (the first is libvirt's default).
POOL_SOURCE_FORMATS: dict[str, tuple[str, ...]] = {
    "fs": ("auto", "ext2", "ext3", "ext4", "xfs", "vfat"),
    "netfs": ("auto", "nfs", "cifs", "glusterfs"),
    "logical": ("lvm2",),
    "disk": ("unknown", "dos", "gpt"),
}
# What libvirt knows but pyvirt does not handle: a specific message, not "unknown".
_LIBVIRT_ONLY_POOLS = ("iscsi-direct", "scsi", "mpath", "rbd", "sheepdog", "gluster", "zfs", "vstorage")
_LIBVIRT_ONLY_FORMATS = {
    "fs": ("ufs", "iso9660", "udf", "gfs", "gfs2", "hfs+", "ocfs2", "vmfs"),
    "disk": ("dvh", "mac", "bsd", "pc98", "sun", "lvm2"),
    "logical": ("unknown",),
}
_VOLUME_TYPES = ("file", "block")
_LIBVIRT_VOLUME_FORMATS = (
    "none", "dir", "bochs", "cloop", "dmg", "iso", "vpc", "vdi", "fat", "vhd", "ploop", "cow", "qcow",
    "qed", "vmdk", "luks", "vhdx",
)

# Which <source> children each pool type reads and writes (libvirt's per-type flags).
_USES = {
    "dir": (),
    "fs": ("device", "format"),
    "netfs": ("host", "dir", "format"),
    "logical": ("device", "name", "format"),
    "disk": ("device", "format"),
    "iscsi": ("host", "device", "initiator"),
}
_EXAMPLES = {
    "device": "<device path='/dev/sdb'/>",
    "host": "<host name='nfs.example.com'/>",
    "dir": "<dir path='/export/images'/>",
    "name": "<name>vgname</name>",
    "format": "<format type='...'/>",
    "initiator": "<initiator><iqn name='iqn.2024-01.org.example:host'/></initiator>",
}

POOL_HINTS = {
    "features": Hint("pool features (copy-on-write control) are not supported; remove <features>"),
    "refresh": Hint("volume allocation refresh policies are not supported; remove <refresh>"),
}
SOURCE_HINTS = {
    "adapter": Hint("SCSI host adapters are for scsi pools, which pyvirt does not support; remove it"),
    "auth": Hint("CHAP/ceph authentication is not supported; remove <auth>"),
    "vendor": Hint("vendor matching is not supported; remove it"),
    "product": Hint("product matching is not supported; remove it"),
    "protocol": Hint("choosing the NFS protocol version is not supported; remove <protocol>"),
}
PERM_HINTS = {"label": Hint("security labels on pool/volume files are not supported; remove <label>")}
TARGET_HINTS = {
    "encryption": Hint("encrypted volumes are not supported yet; remove <encryption>"),
    "features": Hint("qcow2 feature flags (lazy_refcounts) are not supported; remove <features>"),
    "clusterSize": Hint("choosing the qcow2 cluster size is not supported; remove <clusterSize>"),
    "nocow": Hint("<nocow/> is not supported; remove it"),
}


# ====================================================================== names
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def volume_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a volume (a file in the pool directory), or None."""
    if not name:
        return "it is empty"
    if "/" in name:
        return "it contains '/'"
    if name in (".", ".."):
        return f"it is '{name}'"
    if _CONTROL.search(name):
        return "it contains a control character"
    if name != name.strip():
        return "it starts or ends with white space"
    if len(name.encode()) > 255:
        return "it is longer than 255 bytes"
    return None


def check_volume_name(name: str) -> str:
    problem = volume_name_problem(name)
    if problem is not None:
        raise InvalidArgument(
            f"invalid volume name {name!r}: {problem}; a volume name may not contain '/' or control "
            "characters, be empty, '.' or '..', or be longer than 255 bytes: it names a file in the pool"
        )
    return name


# ====================================================================== shared parts
def _size(r: Reader, what: str, minimum: int = 0) -> int:
    """<capacity unit='G'>10</capacity> -> bytes; the unit defaults to bytes as in libvirt."""
    unit = r.attr("unit")
    text = r.text().strip()
    r.done()
    if not text.isdigit():
        raise r.error(f"'{text}' is not a whole number", f"write the {what} as e.g. <{what} unit='G'>10</{what}>")
    try:
        value = scale(int(text), unit, default_unit="bytes")
    except InvalidArgument as exc:
        raise _err(r, exc) from None
    if value < minimum:
        raise r.error(f"the {what} is {value} bytes", f"it must be at least {minimum}")
    return value


def _permissions(r: Reader) -> Permissions:
    mode = None
    mode_r = r.child("mode")
    if mode_r is not None:
        text = mode_r.text().strip()
        mode_r.done()
        if not re.fullmatch(r"[0-7]{1,4}", text):
            raise mode_r.error(f"mode '{text}' is not an octal file mode", "write e.g. <mode>0755</mode>")
        mode = f"0{int(text, 8):o}"
    ids: dict[str, int | None] = {}
    for tag in ("owner", "group"):
        child = r.child(tag)
        ids[tag] = None
        if child is not None:
            value = child.int_text(minimum=-1)
            child.done()
            ids[tag] = None if value == -1 else value
    r.done(PERM_HINTS)
    return Permissions(mode=mode, owner=ids["owner"], group=ids["group"])


def _path_text(r: Reader, what: str) -> str:
    text = r.text().strip()
    r.done()
    if not text:
        raise r.error(f"the {what} is empty", "write an absolute path such as /var/lib/pyvirt/images")
    if is_json_filename(text):
        raise r.error(f"the {what} '{text[:60]}' is refused", JSON_FILENAME_HINT)
    return text


def sanitize_path(path: str) -> str:
    """Collapse '//' and drop a trailing '/' (libvirt's virFileSanitizePath)."""
    clean = re.sub(r"/{2,}", "/", path)
    return clean.rstrip("/") or "/"


# ====================================================================== pool parse
def parse_pool_xml(text: str) -> Pool:
    """Parse and validate a <pool> document (see the module docstring)."""
    r = open_document(text, "pool", "<pool type='dir'>")
    name = read_name(r, "pool", strip=True)

    ptype = r.attr("type")
    if ptype is None:
        raise r.error("attribute 'type' is missing", "write <pool type='dir'> (or fs, netfs, logical, disk, iscsi)")
    if ptype not in POOL_TYPES:
        known = "libvirt pool type" if ptype in _LIBVIRT_ONLY_POOLS else "pool type"
        raise UnsupportedConfig(
            f"pool '{name}': {known} '{ptype}' is not supported; pyvirt handles {', '.join(POOL_TYPES)}"
        )

    uuid = read_uuid(r)
    for live in ("capacity", "allocation", "available"):  # live facts: checked, then dropped
        live_r = r.child(live)
        if live_r is not None:
            _size(live_r, live)

    source_r = r.child("source")
    source = _pool_source(source_r, ptype, name) if source_r is not None else PoolSource()
    source = _source_defaults(source, ptype, name)
    _require_source(source, ptype, name)
    target = _pool_target(r.child("target"), ptype, source, name)
    r.done(POOL_HINTS)
    return Pool(name=name, type=ptype, target=target, uuid=uuid, source=source)


def _pool_source(r: Reader, ptype: str, pool: str) -> PoolSource:
    uses = _USES[ptype]
    for tag in ("device", "host", "dir", "name", "format", "initiator"):
        if tag not in uses and r.children(tag):
            needed = ", ".join(f"<{t}>" for t in uses) or "no <source> children"
            raise r.error(f"<{tag}> is not used by {ptype} pools", f"they take {needed}; remove it")
    devices = []
    for dev in r.children("device"):
        devices.append(_path_text_attr(dev, "path"))
        dev.ignore_children("freeExtent")  # live facts of disk pools
        dev.done()
    hosts = r.children("host")
    if len(hosts) > 1:
        raise r.error(f"{len(hosts)} <host> elements", "pyvirt mounts from one host; keep one")
    host = port = None
    if hosts:
        host = hosts[0].req_attr("name").strip()
        port = hosts[0].int_attr("port", minimum=1)
        if port is not None and port > 65535:
            raise hosts[0].attr_error("port", str(port), "use a TCP port number 1-65535")
        hosts[0].done()
        if not host:
            raise hosts[0].error("the host name is empty", "write <host name='nfs.example.com'/>")
    src_dir = None
    dir_r = r.child("dir")
    if dir_r is not None:
        src_dir = _path_text_attr(dir_r, "path")
        dir_r.done()
    vg = r.child_text("name")
    if vg is not None:
        vg = vg.strip()
    fmt = None
    fmt_r = r.child("format")
    if fmt_r is not None:
        fmt = fmt_r.req_attr("type")
        fmt_r.done()
        allowed = POOL_SOURCE_FORMATS[ptype]
        if fmt not in allowed:
            libvirt = fmt in _LIBVIRT_ONLY_FORMATS.get(ptype, ())
            cls = UnsupportedConfig if libvirt else InvalidArgument
            raise fmt_r.error(f"source format '{fmt}' is not supported for {ptype} pools",
                              f"use one of {', '.join(allowed)}", cls)
    iqn = None
    init_r = r.child("initiator")
    if init_r is not None:
        iqn_r = init_r.child("iqn")
        if iqn_r is None:
            raise init_r.error("<iqn> is missing", "write <initiator><iqn name='iqn....'/></initiator>")
        iqn = iqn_r.req_attr("name")
        iqn_r.done()
        init_r.done()
    r.done(SOURCE_HINTS)
    return PoolSource(devices=tuple(devices), host=host, port=port, dir=src_dir, name=vg, format=fmt, iqn=iqn)


def _path_text_attr(r: Reader, attr: str) -> str:
    value = r.req_attr(attr).strip()
    if not value:
        raise r.error(f"attribute '{attr}' is empty", f"write {attr}='/dev/sdb' (a path)")
    return value


def _source_defaults(src: PoolSource, ptype: str, pool: str) -> PoolSource:
    changes: dict[str, object] = {}
    if ptype in POOL_SOURCE_FORMATS and src.format is None:
        changes["format"] = POOL_SOURCE_FORMATS[ptype][0]
    if ptype == "logical" and not src.name:
        changes["name"] = pool
    return replace(src, **changes) if changes else src  # type: ignore[arg-type]


def _require_source(src: PoolSource, ptype: str, pool: str) -> None:
    def need(what: str, example: str) -> InvalidArgument:
        return InvalidArgument(f"pool '{pool}' of type '{ptype}' needs a source {what}; add <source>{example}</source>")

    if ptype in ("fs", "disk", "iscsi") and not src.devices:
        example = "<device path='iqn.2024-01.org.example:target'/>" if ptype == "iscsi" else _EXAMPLES["device"]
        raise need("device", example)
    if ptype in ("fs", "disk", "iscsi") and len(src.devices) > 1:
        raise InvalidArgument(f"pool '{pool}' of type '{ptype}' takes one source device, not {len(src.devices)}; "
                              "keep one <device>")
    if ptype in ("netfs", "iscsi") and not src.host:
        raise need("host", _EXAMPLES["host"])
    if ptype == "netfs" and not src.dir:
        raise need("directory (the export)", _EXAMPLES["dir"])
    _check_source_words(src, ptype, pool)
    if ptype == "logical":
        problem = lvm_name_problem(src.name or "")
        if problem:
            raise InvalidArgument(f"pool '{pool}': volume group name {src.name!r} is not valid for LVM: {problem}; "
                                  "write <source><name>vgname</name></source> with letters, digits, '+', '_', '.', '-'")


def _check_source_words(src: PoolSource, ptype: str, pool: str) -> None:
    """The source's host and paths become arguments of mount, parted, pvcreate and iscsiadm: plain, or refused."""
    if src.host is not None and (problem := source_host_problem(src.host)) is not None:
        raise InvalidArgument(f"pool '{pool}': source host {src.host!r} is refused: {problem}; "
                              "write a server name or address, e.g. <host name='nfs.example.com'/>")
    words = [("source directory", src.dir), *(("source device", dev) for dev in src.devices)]
    for what, value in words:
        if value is not None and (bad := control_char(value)) is not None:
            raise InvalidArgument(f"pool '{pool}': {what} {value!r} contains the control character {bad!r}; "
                                  "rename it")
    paths = [("source directory", src.dir)] if ptype == "netfs" else []
    if ptype != "iscsi":  # an iSCSI device is the target's IQN, not a path
        paths += [("source device", dev) for dev in src.devices]
    for what, value in paths:
        if value is not None and not value.startswith("/"):
            raise InvalidArgument(f"pool '{pool}': {what} {value!r} is not an absolute path; write the full path "
                                  "starting with / (e.g. <device path='/dev/sdb'/>, <dir path='/export/images'/>)")


_LVM_NAME = re.compile(r"^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$")
_LVM_RESERVED = ("_cdata", "_cmeta", "_corig", "_iorig", "_mimage", "_mlog", "_pmspare", "_rimage",
                 "_rmeta", "_tdata", "_tmeta", "_vdata", "_vorigin", "_wcorig")


def lvm_name_problem(name: str) -> str | None:
    """Why LVM would refuse ``name`` for a VG or LV (lvm(8) 'VALID NAMES'), or None."""
    if not name:
        return "it is empty"
    if len(name) > 127:
        return "it is longer than 127 characters"
    if name in (".", ".."):
        return f"it is '{name}'"
    if not _LVM_NAME.match(name):
        return "it may hold only letters, digits and '+', '_', '.', '-', and may not start with '-'"
    if name.startswith(("snapshot", "pvmove")):
        return f"names starting with '{'snapshot' if name.startswith('snapshot') else 'pvmove'}' are reserved"
    bad = next((s for s in _LVM_RESERVED if s in name), None)
    if bad:
        return f"names containing '{bad}' are reserved for LVM's internal volumes"
    return None


def _pool_target(r: Reader | None, ptype: str, src: PoolSource, pool: str) -> PoolTarget:
    path = perms = None
    if r is not None:
        path_r = r.child("path")
        if path_r is not None:
            path = _path_text(path_r, "target path")
        perm_r = r.child("permissions")
        if perm_r is not None:
            perms = _permissions(perm_r)
        r.done()
    if ptype == "logical":
        vg_path = f"/dev/{src.name}"
        if path is not None and sanitize_path(path) != vg_path:
            raise InvalidArgument(f"pool '{pool}': the target path of a logical pool is /dev/VG ('{vg_path}'), "
                                  f"not '{path}'; leave <target><path> out or write {vg_path}")
        path = vg_path
    if path is None:
        example = "/dev" if ptype in ("disk", "iscsi") else "/var/lib/pyvirt/images"
        raise InvalidArgument(f"pool '{pool}' has no target path; add <target><path>{example}</path></target>")
    if not path.startswith("/"):
        raise InvalidArgument(f"pool '{pool}': the target path '{path}' is relative; write an absolute path "
                              "such as /var/lib/pyvirt/images")
    if (bad := control_char(path)) is not None:
        raise InvalidArgument(f"pool '{pool}': the target path {path!r} contains the control character {bad!r}; "
                              "use a plain path such as /var/lib/pyvirt/images")
    return PoolTarget(path=sanitize_path(path), permissions=perms)


# ====================================================================== pool format
def format_pool_xml(pool: Pool, info: PoolInfo | None = None) -> str:
    """`virsh pool-dumpxml`: ``info`` gives the live sizes (0 when the pool is not running)."""
    sizes = info or PoolInfo(capacity=0, allocation=0, available=0)
    root = node("pool", ("type", pool.type))
    root.add(node("name", text=pool.name))
    if pool.uuid:
        root.add(node("uuid", text=pool.uuid))
    root.add(node("capacity", ("unit", "bytes"), text=str(sizes.capacity)))
    root.add(node("allocation", ("unit", "bytes"), text=str(sizes.allocation)))
    root.add(node("available", ("unit", "bytes"), text=str(sizes.available)))
    root.add(_fmt_pool_source(pool))
    target = node("target", children=[node("path", text=pool.target.path), _fmt_perms(pool.target.permissions)])
    root.add(target)
    return render(root)


def _fmt_pool_source(pool: Pool) -> Node:
    uses, src = _USES[pool.type], pool.source
    out = node("source", expand=True)  # libvirt writes an empty <source> open and closed
    if "host" in uses and src.host:
        out.add(node("host", ("name", src.host), ("port", src.port)))
    if "device" in uses:
        for dev in src.devices:
            out.add(node("device", ("path", dev)))
    if "dir" in uses and src.dir:
        out.add(node("dir", ("path", src.dir)))
    if "name" in uses and src.name:
        out.add(node("name", text=src.name))
    if "initiator" in uses and src.iqn:
        out.add(node("initiator", children=[node("iqn", ("name", src.iqn))]))
    if "format" in uses:
        out.add(node("format", ("type", src.format or POOL_SOURCE_FORMATS[pool.type][0])))
    return out


def format_pool_request_xml(pool: Pool) -> str:
    """The <pool> `virsh pool-define-as --print-xml` prints (vshBuildPoolXML): only the parts that are set.

    Any pool type is written as given (the daemon names the ones it lacks); <source> holds host, dir,
    devices, format, name and initiator in virsh's order; an empty target path means "not given"
    (the parser picks the default, e.g. /dev/VG of a logical pool) and writes no <target>.
    """
    src = pool.source
    source = node("source", children=[
        node("host", ("name", src.host), ("port", src.port)) if src.host else None,
        node("dir", ("path", src.dir)) if src.dir else None,
        *[node("device", ("path", dev)) for dev in src.devices],
        node("format", ("type", src.format)) if src.format else None,
        node("name", text=src.name) if src.name else None,
        node("initiator", children=[node("iqn", ("name", src.iqn))]) if src.iqn else None,
    ])
    root = node("pool", ("type", pool.type), children=[
        node("name", text=pool.name),
        node("uuid", text=pool.uuid) if pool.uuid else None,
        source if source.children else None,
        node("target", children=[node("path", text=pool.target.path), _fmt_perms(pool.target.permissions)])
        if pool.target.path else None,
    ])
    return render(root)


def _fmt_perms(p: Permissions | None) -> Node | None:
    if p is None or (p.mode is None and p.owner is None and p.group is None):
        return None
    mode = None if p.mode is None else f"0{int(p.mode, 8):o}"
    return node("permissions", children=[
        node("mode", text=mode) if mode is not None else None,
        node("owner", text=str(p.owner)) if p.owner is not None else None,
        node("group", text=str(p.group)) if p.group is not None else None,
    ])


# ====================================================================== volume parse
def parse_volume_xml(text: str) -> Volume:
    """Parse and validate a <volume> document (vol-create, vol-create-from)."""
    root, declared = parse_xml(text, "volume XML")
    ctx = Context("volume", declared)
    if root.tag != "volume":
        raise InvalidArgument(
            f"the root element is <{ctx.show_tag(root.tag)}>, not <volume>; a volume definition starts with "
            "<volume> (or <volume type='file'>)"
        )
    r = Reader(root, ctx, "<volume>", root=True)
    name_r = r.child("name")
    if name_r is None:
        raise InvalidArgument("the volume XML has no <name>; add <name>disk.qcow2</name>")
    name = name_r.text().strip()
    name_r.done()
    check_volume_name(name)
    ctx.name = name
    vtype = r.attr("type") or "file"
    if vtype not in _VOLUME_TYPES:
        raise UnsupportedConfig(f"volume '{name}': volume type '{vtype}' is not supported; use 'file' or 'block'")
    key = r.child_text("key")
    r.ignore_children("source")  # LVM extents and the like: output only
    backing = _opt_backing(r.child("backingStore"))

    cap_r = r.child("capacity")
    if cap_r is None:
        if backing is None:
            raise InvalidArgument(f"volume '{name}' has no <capacity>; add e.g. <capacity unit='G'>10</capacity>")
        capacity = 0  # the backing image's size
    else:
        capacity = _size(cap_r, "capacity")
        if capacity <= 0:
            raise InvalidArgument(f"volume '{name}': the capacity is {capacity} bytes; it must be above zero, "
                                  "e.g. <capacity unit='G'>10</capacity>")
    alloc_r = r.child("allocation")
    allocation = _size(alloc_r, "allocation") if alloc_r is not None else None
    if allocation is not None and capacity and allocation > capacity:
        raise InvalidArgument(f"volume '{name}': the allocation ({allocation} bytes) is larger than the capacity "
                              f"({capacity} bytes); allocate at most the capacity")
    phys_r = r.child("physical")
    physical = _size(phys_r, "physical") if phys_r is not None else None

    path = fmt = perms = None
    target_r = r.child("target")
    if target_r is not None:
        path, fmt, perms = _vol_target(target_r)
    r.done()
    return Volume(name=name, capacity=capacity, allocation=allocation, format=fmt, backing=backing,
                  permissions=perms, key=key.strip() if key else None, path=path, type=vtype,
                  physical=physical)


def _volume_format(r: Reader) -> str:
    fmt = r.req_attr("type")
    r.done()
    if fmt not in VOLUME_FORMATS:
        known = fmt in _LIBVIRT_VOLUME_FORMATS
        cls = UnsupportedConfig if known else InvalidArgument
        what = "is not supported" if known else "is not a volume format"
        raise r.error(f"format '{fmt}' {what}", f"use one of {', '.join(VOLUME_FORMATS)}", cls)
    return fmt


def _vol_target(r: Reader) -> tuple[str | None, str | None, Permissions | None]:
    path = fmt = perms = None
    path_r = r.child("path")
    if path_r is not None:
        path = _path_text(path_r, "volume path")
    fmt_r = r.child("format")
    if fmt_r is not None:
        fmt = _volume_format(fmt_r)
    perm_r = r.child("permissions")
    if perm_r is not None:
        perms = _permissions(perm_r)
    r.ignore_children("timestamps")
    compat = r.child_text("compat")
    if compat is not None and compat.strip() != "1.1":
        raise r.error(f"qcow2 compat '{compat.strip()}' is not supported",
                      "pyvirt creates qcow2 version 3 (compat 1.1); remove <compat> or write 1.1")
    r.done(TARGET_HINTS)
    return path, fmt, perms


def _opt_backing(r: Reader | None) -> BackingStore | None:
    if r is None:
        return None
    path_r = r.child("path")
    if path_r is None:
        raise r.error("<path> is missing", "write <backingStore><path>/pool/base.qcow2</path></backingStore>")
    path = _path_text(path_r, "backing store path")
    if not path.startswith("/"):
        raise path_r.error(f"the backing store path '{path}' is relative", "write the backing file's absolute path")
    fmt = None
    fmt_r = r.child("format")
    if fmt_r is not None:
        fmt = _volume_format(fmt_r)
    r.ignore_children("permissions")
    r.ignore_children("timestamps")
    r.done()
    return BackingStore(path=path, format=fmt)


# ====================================================================== volume format
def format_volume_xml(vol: Volume) -> str:
    """`virsh vol-dumpxml`: live facts (key, path, allocation, physical) are written when known."""
    root = node("volume", ("type", vol.type))
    root.add(node("name", text=vol.name))
    if vol.key is not None:
        root.add(node("key", text=vol.key))
    if vol.capacity or vol.backing is None:  # 0 with a backing store: "the backing image's size"
        root.add(node("capacity", ("unit", "bytes"), text=str(vol.capacity)))
    if vol.allocation is not None:
        root.add(node("allocation", ("unit", "bytes"), text=str(vol.allocation)))
    if vol.physical is not None:
        root.add(node("physical", ("unit", "bytes"), text=str(vol.physical)))
    root.add(node("target", children=[
        node("path", text=vol.path) if vol.path is not None else None,
        node("format", ("type", vol.format)) if vol.format is not None else None,
        _fmt_perms(vol.permissions),
    ], expand=True))  # libvirt writes an empty <target> open and closed
    root.add(_fmt_backing(vol.backing))
    return render(root)


def format_volume_request_xml(vol: Volume) -> str:
    """The <volume> `virsh vol-create-as --print-xml` prints: sizes in bytes without a unit, no type,
    <target> only for a format, and the <backingStore> to build on."""
    root = node("volume", children=[
        node("name", text=vol.name),
        node("capacity", text=str(vol.capacity)),
        node("allocation", text=str(vol.allocation)) if vol.allocation is not None else None,
        node("target", children=[node("format", ("type", vol.format))]) if vol.format else None,
        _fmt_backing(vol.backing),
    ])
    return render(root)


def _fmt_backing(b: BackingStore | None) -> Node | None:
    if b is None:
        return None
    return node("backingStore", children=[
        node("path", text=b.path),
        node("format", ("type", b.format)) if b.format is not None else None,
    ])
