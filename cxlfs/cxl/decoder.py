"""HDM decoders: root (CFMWS windows), switch/host-bridge, endpoint (core/port.c, core/hdm.c)."""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ..core.attrs import attr
from ..core.errors import KernelError
from ..core.parse import WriteBuf, hex_prefixed, kstrtoull, phys_addr, sysfs_streq
from .bus import CXLDevice

if TYPE_CHECKING:
    from .port import CXLPort, Dport
    from .region import Region

SZ_256M = 256 << 20
NO_RESOURCE = (1 << 64) - 1

# CFMWS restriction flags
CXL_DECODER_F_RAM = 1 << 0
CXL_DECODER_F_PMEM = 1 << 1
CXL_DECODER_F_TYPE2 = 1 << 2
CXL_DECODER_F_TYPE3 = 1 << 3
CXL_DECODER_F_LOCK = 1 << 4


class Decoder(CXLDevice):
    """decoderX.Y: X is the port id, Y the decoder index within the port."""

    cxl_id = 0

    def __init__(self, kernel, port: "CXLPort", index: int):
        super().__init__(kernel, f"decoder{port.port_id}.{index}", port)
        self.port = port
        self.index = index
        self.start = 0
        self.size = 0
        self.ways = 1
        self.granularity = 256
        self.locked = False
        self.committed = False
        self.region: Region | None = None
        self.target_type = "expander"

    # base group
    @attr.admin_ro
    def start(self) -> str:
        return f"{hex_prefixed(self.start)}\n"

    @attr.ro
    def size(self) -> str:
        return f"{hex_prefixed(self.size)}\n"

    @attr.ro
    def locked(self) -> str:
        return "1\n" if self.locked else "0\n"

    @attr.ro
    def interleave_ways(self) -> str:
        return f"{self.ways}\n"

    @attr.ro
    def interleave_granularity(self) -> str:
        return f"{self.granularity}\n"

    def reset_hpa(self) -> None:
        self.start = 0
        self.size = 0


def _target_list(targets: list["Dport | None"], ways: int) -> str:
    ids = []
    for dport in targets[:ways]:
        if dport is None:
            break
        ids.append(str(dport.id))
    return ",".join(ids) + "\n"


class RootDecoder(Decoder):
    """One CEDT CFMWS window: fixed range, interleave over host bridges, region factory."""

    devtype = "cxl_decoder_root"

    def __init__(self, kernel, port: "CXLPort", index: int, *, start: int, size: int,
                 targets: list["Dport"], granularity: int, flags: int, qos_class: int = 42,
                 xor: bool = False, target_node: int = -1):
        super().__init__(kernel, port, index)
        self.start = start
        self.size = size
        self.targets = list(targets)
        self.ways = len(targets)
        self.granularity = granularity
        self.flags = flags
        self.locked = bool(flags & CXL_DECODER_F_LOCK)
        self.qos_class = qos_class
        self.xor = xor
        self.target_node = target_node
        self.region_id: int = -1        # the memregion id create_*_region offers next

    @property
    def end(self) -> int:
        return self.start + self.size - 1

    def on_remove(self) -> None:
        for region in list(self.kernel.cxl.regions.of_root(self)):
            self.kernel.cxl.regions.unregister(region)
        self.kernel.cxl.memregion_ida.free(self.region_id)

    def cap(self, flag: int) -> bool:
        return bool(self.flags & flag)

    @attr.ro
    def cap_pmem(self) -> str:
        return f"{int(self.cap(CXL_DECODER_F_PMEM))}\n"

    @attr.ro
    def cap_ram(self) -> str:
        return f"{int(self.cap(CXL_DECODER_F_RAM))}\n"

    @attr.ro
    def cap_type2(self) -> str:
        return f"{int(self.cap(CXL_DECODER_F_TYPE2))}\n"

    @attr.ro
    def cap_type3(self) -> str:
        return f"{int(self.cap(CXL_DECODER_F_TYPE3))}\n"

    @attr.ro
    def target_list(self) -> str:
        return _target_list(self.targets, self.ways)

    @attr.ro
    def qos_class(self) -> str:
        return f"{self.qos_class}\n"

    def _can_create(self, flag: int) -> int:
        return 0o644 if self.cap(CXL_DECODER_F_TYPE3) and self.cap(flag) else 0

    @attr.rw(visible=lambda self: self._can_create(CXL_DECODER_F_RAM))
    def create_ram_region(self) -> str:
        return f"region{self.region_id}\n"

    @create_ram_region.store
    def create_ram_region(self, buf: WriteBuf) -> None:
        self.kernel.cxl.regions.create(self, buf, "ram")

    @attr.rw(visible=lambda self: self._can_create(CXL_DECODER_F_PMEM))
    def create_pmem_region(self) -> str:
        return f"region{self.region_id}\n"

    @create_pmem_region.store
    def create_pmem_region(self, buf: WriteBuf) -> None:
        self.kernel.cxl.regions.create(self, buf, "pmem")

    @attr.wo(visible=lambda self: 0o200 if self._can_create(CXL_DECODER_F_RAM)
             or self._can_create(CXL_DECODER_F_PMEM) else 0)
    def delete_region(self, buf: WriteBuf) -> None:
        self.kernel.cxl.regions.delete(self, buf)


class SwitchDecoder(Decoder):
    """Decoders of host-bridge and switch ports: programmed by the kernel when a region commits."""

    devtype = "cxl_decoder_switch"

    def __init__(self, kernel, port: "CXLPort", index: int, nr_targets: int):
        super().__init__(kernel, port, index)
        self.nr_targets = nr_targets
        self.targets: list[Dport | None] = []

    @attr.ro
    def target_type(self) -> str:
        return f"{self.target_type}\n"

    @attr.ro
    def target_list(self) -> str:
        return _target_list(self.targets, self.ways)

    @attr.ro
    def region(self) -> str:
        return f"{self.region.name}\n" if self.region else "\n"


class EndpointDecoder(Decoder):
    """Endpoint decoders own a DPA allocation in one partition of their memdev."""

    devtype = "cxl_decoder_endpoint"

    def __init__(self, kernel, port: "CXLPort", index: int):
        super().__init__(kernel, port, index)
        self.mode = "none"
        self.dpa_start: int | None = None
        self.dpa_size = 0
        self.skip = 0
        self.pos = -1            # position in its region

    @property
    def memdev(self):
        return self.port.memdev

    def on_remove(self) -> None:
        self.kernel.cxl.regions.detach_decoder(self)

    @attr.ro
    def target_type(self) -> str:
        return f"{self.target_type}\n"

    @attr.ro
    def region(self) -> str:
        return f"{self.region.name}\n" if self.region else "\n"

    @attr.rw(values=("ram", "pmem"))
    def mode(self) -> str:
        return f"{self.mode}\n"

    @mode.store
    def mode(self, buf: WriteBuf) -> None:
        """cxl_dpa_set_part(): pick the partition later dpa_size writes allocate from."""
        if sysfs_streq(buf, "ram"):
            want = "ram"
        elif sysfs_streq(buf, "pmem"):
            want = "pmem"
        else:
            raise KernelError(errno.EINVAL)
        if self.committed:
            raise self.dbg("cannot change mode of an enabled decoder", errno.EBUSY)
        part = self.memdev.partition(want)
        if part is None:
            raise self.dbg(f"no {want} partition", errno.EINVAL)
        if part.size == 0:
            raise self.dbg(f"{want} partition has no capacity", errno.ENXIO)
        self.mode = want

    @attr.rw
    def dpa_size(self) -> str:
        return f"{phys_addr(self.dpa_size)}\n"

    @dpa_size.store
    def dpa_size(self, buf: WriteBuf) -> None:
        size = kstrtoull(buf, 0)
        if size % SZ_256M:
            raise KernelError(errno.EINVAL)
        self.memdev.dpa.free(self)
        if size:
            self.memdev.dpa.alloc(self, size)

    @attr.ro
    def dpa_resource(self) -> str:
        return f"{hex_prefixed(NO_RESOURCE if self.dpa_start is None else self.dpa_start)}\n"
