"""RFC v4 24/27 "cxl/core: Add cxl_sysram region type" (Gregory Price, 22 Feb 2026).

No DAX layer: a bound RAM region gets ``sysram_regionN`` (device type cxl_sysram, id 10)
whose write-only ``hotplug`` file hot-adds the region's range as System RAM (CXL) with the
written online type, or offlines and removes it.  A Kconfig choice picks what probe does:
with an online type as default the memory is added right away.
"""
from __future__ import annotations

import errno

from ..core.attrs import attr
from ..core.errors import KernelError
from ..core.parse import WriteBuf
from ..cxl.bus import CXL_DEVICE_SYSRAM, CXLDevice, CXLDriver
from ..cxl.region import Region
from ..mm.memory import MemoryGroup
from ..mm.node import LOWTIER_ADISTANCE
from ..mm.zones import (MMOP_OFFLINE, MMOP_ONLINE_KERNEL, MMOP_ONLINE_MOVABLE, ONLINE_TYPES,
                        parse_online_type)

# CONFIG_CXL_SYSRAM_ONLINE_TYPE_*: what a freshly probed sysram region does
KCONFIG_DEFAULTS = {"system-default": None, "movable": MMOP_ONLINE_MOVABLE,
                    "normal": MMOP_ONLINE_KERNEL, "offline": MMOP_OFFLINE}


class Sysram(CXLDevice):
    devtype = "cxl_sysram"
    cxl_id = CXL_DEVICE_SYSRAM

    def __init__(self, kernel, region: Region):
        super().__init__(kernel, f"sysram_region{region.id}", region)
        self.region = region
        self.added: tuple[int, int] | None = None     # the hot-added (start, size)
        self.res = None

    @attr.wo(values=tuple(ONLINE_TYPES))
    def hotplug(self, buf: WriteBuf) -> None:
        online_type = parse_online_type(buf)
        if online_type == MMOP_OFFLINE:
            self.unplug()
        else:
            if self.added is not None:
                raise self.dbg("memory already added", errno.EBUSY)
            self.plug(online_type)

    def usable_range(self) -> tuple[int, int]:
        """The region trimmed inward to memory-block alignment; ENOSPC when nothing is left."""
        bs = self.kernel.mm.block_size
        region = self.region
        start = (region.hpa_start + bs - 1) // bs * bs
        end = (region.hpa_start + region.hpa_size) // bs * bs
        if end <= start:
            raise self.err("region smaller than a memory block after alignment", errno.ENOSPC)
        return start, end - start

    def plug(self, online_type: int) -> None:
        mm = self.kernel.mm
        start, size = self.usable_range()
        nid = self.region.cxlrd.target_node
        mm.nodes.set_adistance(nid, LOWTIER_ADISTANCE)
        res = mm.request_region(start, size, f"cxl_sysram{self.region.id}")
        try:
            mm.add_memory(nid, start, size, resource_name="System RAM (CXL)",
                          group=MemoryGroup(nid), online_type=online_type, memmap_on_memory=True)
        except KernelError:
            mm.release_region(res)
            raise
        self.added, self.res = (start, size), res

    def unplug(self) -> None:
        if self.added is None:
            return
        start, size = self.added
        self.kernel.mm.offline_and_remove_memory(start, size)
        self.kernel.mm.release_region(self.res)
        self.added = self.res = None


class CxlSysramDriver(CXLDriver):
    name = "cxl_sysram"
    module = "cxl_core"
    id = CXL_DEVICE_SYSRAM

    def probe(self, dev: Sysram) -> None:
        default = self.kernel.profile_options.get("sysram_online_type", "system-default")
        online_type = KCONFIG_DEFAULTS[default]
        if online_type is None:
            online_type = self.kernel.mm.policy.default_online_type
        if online_type != MMOP_OFFLINE:
            dev.plug(online_type)

    def remove(self, dev: Sysram) -> None:
        if dev.added is None:
            return
        try:
            self.kernel.mm.remove_memory(*dev.added)
        except KernelError:
            dev.log("err", "memory still online: cannot be removed until the next reboot")
            return
        self.kernel.mm.release_region(dev.res)
        dev.added = dev.res = None


def add_sysram(region: Region) -> None:
    """sysram_regionN (cxl_sysram) under the region instead of a dax region."""
    if region.kernel.mm.busy_system_ram(region.hpa_start, region.hpa_size):
        return
    region.devm_add_child(Sysram(region.kernel, region))


DRIVERS = (CxlSysramDriver,)
DEVICE_TYPES = (Sysram,)
