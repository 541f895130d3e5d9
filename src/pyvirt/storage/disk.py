"""Disk pools: a whole disk whose partitions are the pool's volumes (parted).

build writes a partition table (dos or gpt; libvirt's 'unknown' means dos),
refusing a disk that holds something unless ``overwrite``; delete zeroes the
first and last MiB as libvirt does. Volumes are partitions, named as the
kernel names them ('sdb1', 'loop0p1') and found through /sys/class/block:
vol-create must use the name of the partition it will make (the lowest free
number), so the volume is known by that name from the start. Partitions start
on 1 MiB boundaries; dos tables hold at most four (primary) volumes. Resizing
partitions is not supported.

Needs Debian's parted (GNU parted 3.x, machine-readable ``-m`` output).
"""
from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass, replace

from ..errors import HostError, InvalidArgument, NotFound, OperationInvalid
from ..model.storage import ImageLayer, Pool, PoolInfo, Volume
from ..model.storage_xml import check_volume_name
from ..qemu import img
from .base import (
    FormatBook,
    ProgressCallback,
    Reader,
    Writer,
    block_size,
    check_range,
    out_of_space,
    raw_only,
    refuse_if_used,
    stream_in,
    stream_out,
    zero_device,
    zero_range,
)
from .run import run

ALIGN = 1024 * 1024  # partitions start on MiB boundaries (parted's "optimal" for most disks)
LABELS = {"dos": "msdos", "unknown": "msdos", "gpt": "gpt"}  # pool format -> parted label
_DOS_PRIMARY_MAX = 4
_BLKRRPART = 0x125F  # _IO(0x12, 95): re-read the partition table


@dataclass(frozen=True)
class Part:
    number: int
    start: int
    end: int  # inclusive, as parted prints it
    size: int


@dataclass(frozen=True)
class Layout:
    size: int
    sector: int
    label: str  # parted's name: msdos, gpt, loop, unknown
    parts: tuple[Part, ...]
    free: tuple[Part, ...]


def parse_parted(text: str) -> Layout:
    """`parted -m -s DEV unit B print free` output -> Layout (numbers in bytes)."""
    lines = [ln.strip().rstrip(";") for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0] != "BYT":
        raise HostError("parted printed something pyvirt cannot read (expected 'BYT;' first)", detail=text[:500])
    disk = lines[1].split(":")
    parts: list[Part] = []
    free: list[Part] = []
    for line in lines[2:]:
        f = line.split(":")
        if len(f) < 4:
            continue
        part = Part(int(f[0]), int(f[1].rstrip("B")), int(f[2].rstrip("B")), int(f[3].rstrip("B")))
        (free if len(f) > 4 and f[4] == "free" else parts).append(part)
    return Layout(size=int(disk[1].rstrip("B")), sector=int(disk[3]), label=disk[5], parts=tuple(parts),
                  free=tuple(free))


class DiskBackend:
    """<pool type='disk'>: partitions on ``pool.source.devices[0]``."""

    def __init__(self, pool: Pool, qemu_img: str | None = None, book: FormatBook | None = None) -> None:
        """``book`` is unused: a block volume is raw by nature, so there is no format to record."""
        if not pool.source.devices:
            raise InvalidArgument(f"disk pool '{pool.name}' needs a source device: "
                                  "<source><device path='/dev/sdb'/></source>")
        self.pool = pool
        self.qemu_img = qemu_img
        self.device = pool.source.devices[0]
        self.label = LABELS.get(pool.source.format or "unknown", "msdos")

    # ------------------------------------------------------------ parted
    def _need_device(self) -> None:
        if not os.path.exists(self.device):
            raise NotFound(f"pool '{self.pool.name}': source device '{self.device}' does not exist")

    def layout(self) -> Layout | None:
        """The disk's partitions and free regions, or None when it has no partition table."""
        self._need_device()
        proc = run(["parted", "-m", "-s", self.device, "unit", "B", "print", "free"], ok=(0, 1),
                   doing=f"read the partition table of '{self.device}'")
        if proc.returncode != 0:
            if "unrecognised disk label" in proc.stderr or "unrecognized disk label" in proc.stderr:
                return None
            raise HostError(f"cannot read the partition table of '{self.device}': {proc.stderr.strip()}")
        return parse_parted(proc.stdout)

    def _need_layout(self) -> Layout:
        found = self.layout()
        if found is None:
            raise OperationInvalid(f"pool '{self.pool.name}': '{self.device}' has no partition table; "
                                   "run pool-build to write one")
        return found

    def _parted(self, *args: str, doing: str) -> None:
        run(["parted", "-s", self.device, *args], doing=doing)

    # ------------------------------------------------------------ names
    @property
    def _disk(self) -> str:
        return os.path.basename(os.path.realpath(self.device))

    def part_name(self, number: int) -> str:
        """The kernel's name for partition ``number`` ('sdb1', 'loop0p1', 'nvme0n1p1')."""
        base = f"/sys/class/block/{self._disk}"
        try:
            for entry in os.listdir(base):
                part_file = os.path.join(base, entry, "partition")
                if entry.startswith(self._disk) and os.path.exists(part_file):
                    with open(part_file, encoding="ascii") as f:
                        if int(f.read().strip()) == number:
                            return entry
        except OSError:
            pass
        return f"{self._disk}p{number}" if self._disk[-1].isdigit() else f"{self._disk}{number}"

    def _number(self, name: str) -> int:
        check_volume_name(name)
        rest = name[len(self._disk):] if name.startswith(self._disk) else ""
        if self._disk[-1].isdigit():  # 'loop0' + 'p1': the kernel puts a 'p' between two digits
            rest = rest[1:] if rest.startswith("p") else ""
        if not rest.isdigit() or rest.startswith("0"):
            raise InvalidArgument(f"invalid volume name {name!r} for disk pool '{self.pool.name}': its volumes are "
                                  f"the partitions of '{self.device}', named like '{self.part_name(1)}'")
        return int(rest)

    def volume_path(self, name: str) -> str:
        self._number(name)
        return f"/dev/{name}"

    # ------------------------------------------------------------ pool
    def build(self, overwrite: bool = False) -> None:
        self._need_device()
        refuse_if_used(self.pool.name, self.device, overwrite, "writing a new partition table")
        size = block_size(self.device)
        zero_range(self.device, 0, min(ALIGN, size))  # old signatures at both ends, as libvirt does
        if size > ALIGN:
            zero_range(self.device, size - ALIGN, ALIGN)
        self._parted("mklabel", self.label, doing=f"write a {self.label} partition table on '{self.device}'")

    def start(self) -> None:
        found = self._need_layout()
        if found.label != self.label:
            raise OperationInvalid(f"pool '{self.pool.name}': '{self.device}' holds a {found.label} partition "
                                   f"table, the pool wants {self.label}; build it with overwrite to replace it")

    def stop(self) -> None:
        """Nothing to undo: the partitions stay visible."""

    def delete(self) -> None:
        """Zero the first and last MiB (the partition tables), as libvirt's pool-delete does."""
        self._need_device()
        size = block_size(self.device)
        zero_range(self.device, 0, min(ALIGN, size))
        if size > ALIGN:
            zero_range(self.device, size - ALIGN, ALIGN)
        fd = os.open(self.device, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.ioctl(fd, _BLKRRPART)
        except OSError:
            pass  # partitions in use keep their nodes until the next re-read
        finally:
            os.close(fd)

    def is_active(self) -> bool:
        return os.path.exists(self.device) and self.layout() is not None

    def info(self) -> PoolInfo:
        found = self._need_layout()
        used = sum(p.size for p in found.parts)
        return PoolInfo(capacity=found.size, allocation=used, available=sum(f.size for f in found.free))

    # ------------------------------------------------------------ volumes
    def _to_volume(self, part: Part) -> Volume:
        name = self.part_name(part.number)
        path = f"/dev/{name}"
        return Volume(name=name, capacity=part.size, allocation=part.size, key=path, path=path, type="block")

    def list_volumes(self) -> list[Volume]:
        return [self._to_volume(p) for p in self._need_layout().parts]

    def volume(self, name: str) -> Volume:
        number = self._number(name)
        for part in self._need_layout().parts:
            if part.number == number and self.part_name(number) == name:
                return self._to_volume(part)
        raise NotFound(f"pool '{self.pool.name}' has no volume '{name}'; see vol-list")

    def _device_of(self, name: str) -> str:
        self.volume(name)
        path = self.volume_path(name)
        if not os.path.exists(path):
            raise HostError(f"partition '{name}' exists on '{self.device}' but {path} does not; the kernel "
                            "has not read the new table (for a loop device use losetup --partscan)")
        return path

    def create_volume(self, vol: Volume, progress: ProgressCallback | None = None) -> Volume:
        """mkpart in the first free region that fits, starting on a MiB boundary."""
        if vol.format not in (None, "raw"):
            raise InvalidArgument(f"disk pool '{self.pool.name}' holds partitions, which are raw; "
                                  f"a {vol.format} volume needs a dir, fs or netfs pool")
        if vol.backing is not None:
            raise InvalidArgument(f"disk pool '{self.pool.name}' cannot make linked clones (backing stores)")
        if vol.capacity <= 0:
            raise InvalidArgument(f"volume '{vol.name}': capacity must be above zero")
        found = self._need_layout()
        used = {p.number for p in found.parts}
        number = next(n for n in range(1, len(used) + 2) if n not in used)
        if found.label == "msdos" and number > _DOS_PRIMARY_MAX:
            raise OperationInvalid(f"disk pool '{self.pool.name}': a dos partition table holds {_DOS_PRIMARY_MAX} "
                                   "partitions and pyvirt makes no extended ones; use a gpt pool for more")
        expected = self.part_name(number)
        if vol.name != expected:
            raise InvalidArgument(f"disk pool '{self.pool.name}' names volumes after their partitions: the next "
                                  f"one on '{self.device}' is '{expected}', not '{vol.name}'")
        size = -(-vol.capacity // found.sector) * found.sector
        start = self._place(found, size)
        if progress is not None:
            progress(0.0)
        self._parted("unit", "B", "mkpart", "primary", f"{start}B", f"{start + size - 1}B",
                     doing=f"create partition {number} on '{self.device}'")
        self._wait_for(expected, present=True)
        if progress is not None:
            progress(100.0)
        return self.volume(expected)

    def _place(self, found: Layout, size: int) -> int:
        best = 0
        for region in found.free:
            start = -(-region.start // ALIGN) * ALIGN
            room = region.end + 1 - start
            if room >= size:
                return start
            best = max(best, room)
        raise out_of_space(self.pool.name, size, best)

    def _wait_for(self, name: str, present: bool, timeout: float = 10.0) -> None:
        """The kernel adds/removes the partition's node shortly after parted returns."""
        deadline = time.monotonic() + timeout
        while os.path.exists(f"/dev/{name}") != present and time.monotonic() < deadline:
            time.sleep(0.05)

    def create_volume_from(self, vol: Volume, source: ImageLayer, backing: tuple[ImageLayer, ...] = (),
                           progress: ProgressCallback | None = None) -> Volume:
        if not os.path.exists(source.path):
            raise NotFound(f"source volume '{source.path}' does not exist; check the path")
        size = img.virtual_size(source.path, source.format, qemu_img=self.qemu_img)
        if vol.capacity and vol.capacity < size:
            raise InvalidArgument(f"volume '{vol.name}': capacity {vol.capacity} bytes is smaller than the "
                                  f"{size} bytes of '{source.path}'; give at least that much")
        made = self.create_volume(replace(vol, capacity=max(vol.capacity, size), format=None))
        try:
            img.convert(source.path, self._device_of(made.name), src_fmt=source.format, backing=backing,
                        src_block=source.block, dst_fmt="raw", progress_cb=progress, qemu_img=self.qemu_img)
        except BaseException:
            self.delete_volume(made.name)
            raise
        return made

    def delete_volume(self, name: str) -> None:
        number = self._number(name)
        self.volume(name)
        self._parted("rm", str(number), doing=f"remove partition {number} from '{self.device}'")
        self._wait_for(name, present=False)

    def resize_volume(self, name: str, capacity: int, shrink: bool = False) -> Volume:
        self.volume(name)
        raise OperationInvalid(f"disk pool '{self.pool.name}' cannot resize partitions; create a new volume "
                               "and copy the data (vol-create-from)")

    def wipe_volume(self, name: str) -> None:
        zero_device(self._device_of(name))

    def set_format(self, name: str, fmt: str, backing_format: str | None = None) -> Volume:
        return raw_only(self.pool.name, self.volume(name), fmt, backing_format)

    def remove_stale(self) -> list[str]:
        """Nothing here is written under a temporary name; nothing to clean."""
        return []

    def upload_volume(self, name: str, reader: Reader, length: int, offset: int = 0,
                      progress: ProgressCallback | None = None) -> int:
        dev = self._device_of(name)
        check_range(name, block_size(dev), offset, length, "upload to")
        return stream_in(dev, reader, length, offset, pool=self.pool.name, volume=name,
                         available=lambda: 0, progress=progress)

    def download_volume(self, name: str, writer: Writer, offset: int = 0, length: int | None = None,
                        progress: ProgressCallback | None = None) -> int:
        dev = self._device_of(name)
        size = block_size(dev)
        if length is None:
            length = max(size - offset, 0)
        check_range(name, size, offset, length, "download from")
        return stream_out(dev, writer, offset, length, progress=progress)
