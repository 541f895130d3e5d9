"""<memoryBacking> in the QEMU command line: mem-merge (KSM) and huge pages from a memfd backend."""
from __future__ import annotations

import json

from pyvirt.model.domain import Domain, Features, MemoryBacking
from pyvirt.qemu.argv import build_argv
from tests.unit.argv_cases import UUID, base_ctx


def argv(backing: MemoryBacking | None, machine: str = "q35") -> list[str]:
    from pyvirt.model.domain import OS

    d = Domain(name="t", uuid=UUID, memory_kib=131072, type="qemu", features=Features(acpi=True),
               os=OS(machine=machine), memory_backing=backing)
    return build_argv(d, base_ctx()).argv


def machine_opt(args: list[str]) -> str:
    return args[args.index("-machine") + 1]


def test_guest_memory_is_mergeable_by_default_and_nosharepages_turns_it_off() -> None:
    assert "mem-merge" not in machine_opt(argv(None))  # QEMU's default: mem-merge=on
    assert "mem-merge" not in machine_opt(argv(MemoryBacking()))
    for machine in ("q35", "microvm"):
        assert machine_opt(argv(MemoryBacking(nosharepages=True), machine)).endswith(",mem-merge=off")


def test_hugepages_get_a_memfd_backend_the_machine_uses() -> None:
    args = argv(MemoryBacking(hugepages=True))
    assert machine_opt(args).endswith(",memory-backend=pc.ram")
    backend = json.loads(args[args.index("-object") + 1])
    assert backend == {"qom-type": "memory-backend-memfd", "id": "pc.ram", "size": 131072 * 1024,
                       "hugetlb": True, "prealloc": True}
    sized = argv(MemoryBacking(hugepages=True, hugepage_size_kib=1048576))
    assert json.loads(sized[sized.index("-object") + 1])["hugetlbsize"] == 1024 ** 3


def test_hugepages_and_nosharepages_together() -> None:
    opt = machine_opt(argv(MemoryBacking(hugepages=True, nosharepages=True)))
    assert opt.endswith(",mem-merge=off,memory-backend=pc.ram")
