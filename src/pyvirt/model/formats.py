"""Image format names pyvirt knows, and the path form it refuses: constants only, so the light
command-line paths (`pyvirt img`) can use them without loading the storage model's dataclasses."""
from __future__ import annotations

VOLUME_FORMATS = ("raw", "qcow2")

#: Formats whose images can name a backing file in their header (QEMU's "backing" option).
COW_FORMATS = ("qcow2", "qed", "vmdk")

#: Why a ``json:`` filename is refused wherever pyvirt takes a path (disk sources, backing stores, pool
#: targets, qemu-img arguments): QEMU and qemu-img read it as a description of what to open, any host
#: file or device included.
JSON_FILENAME_HINT = ("a json: pseudo-filename lets QEMU open any host file or device; pyvirt takes plain paths "
                      "only: give the image's absolute path")


def is_json_filename(path: str) -> bool:
    return path.lstrip().startswith("json:")
