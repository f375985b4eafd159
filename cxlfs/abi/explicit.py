"""[PATCH 0/9] "cxl: explicit DAX driver selection and hotplug" (Gregory Price, 29 Jan 2026).

Binding a committed RAM region to ``cxl_sysram_region`` creates ``sysram_regionN`` whose
``online_type`` the user sets; ``cxl_dax_kmem_region`` then builds the DAX side below it
with kmem and that online type, whatever auto_online_blocks says.  ``cxl_devdax_region``
gives a device-dax region instead.
"""
from __future__ import annotations

import errno

from ..core.attrs import attr
from ..core.parse import WriteBuf
from ..cxl.bus import CXL_DEVICE_REGION, CXL_DEVICE_SYSRAM, CXLDevice, CXLDriver
from ..cxl.region import Region, State
from ..dax.cxl import CxlDaxRegion
from ..mm.zones import MMOP_OFFLINE, MMOP_ONLINE, MMOP_ONLINE_MOVABLE, parse_online_type

ONLINE_TYPE_VALUES = {"offline": MMOP_OFFLINE, "online": MMOP_ONLINE, "online_movable": MMOP_ONLINE_MOVABLE}


def online_type_name(value: int | None) -> str:
    """What these proposals print: ``invalid`` until a type was chosen."""
    return "invalid" if value is None else next(k for k, v in ONLINE_TYPE_VALUES.items() if v == value)


class SysramRegion(CXLDevice):
    """sysram_regionN (devtype cxl_sysram_region, cxl:t10), child of regionN."""

    devtype = "cxl_sysram_region"
    cxl_id = CXL_DEVICE_SYSRAM

    def __init__(self, kernel, region: Region):
        super().__init__(kernel, f"sysram_region{region.id}", region)
        self.region = region
        self.online_type: int | None = None      # None reads "invalid"

    @attr.rw(values=tuple(ONLINE_TYPE_VALUES))
    def online_type(self) -> str:
        return f"{online_type_name(self.online_type)}\n"

    @online_type.store
    def online_type(self, buf: WriteBuf) -> None:
        value = parse_online_type(buf, ONLINE_TYPE_VALUES)
        if self.driver is not None:
            raise self.dbg("online_type is fixed while cxl_dax_kmem_region is bound", errno.EBUSY)
        self.online_type = value


def _ram_committed(region: Region) -> None:
    if region.mode != "ram":
        raise region.dbg("not a RAM region", errno.ENODEV)
    if region.state != State.COMMIT:
        raise region.dbg(f"config state: {int(region.state)}", errno.ENXIO)


class CxlSysramRegionDriver(CXLDriver):
    name = "cxl_sysram_region"
    module = "cxl_core"
    id = CXL_DEVICE_REGION

    def probe(self, region: Region) -> None:
        _ram_committed(region)
        region.devm_add_child(SysramRegion(self.kernel, region))


class CxlDevdaxRegionDriver(CXLDriver):
    name = "cxl_devdax_region"
    module = "cxl_core"
    id = CXL_DEVICE_REGION

    def probe(self, region: Region) -> None:
        _ram_committed(region)
        region.devm_add_child(CxlDaxRegion(self.kernel, region, kmem=False))


class CxlDaxKmemRegionDriver(CXLDriver):
    name = "cxl_dax_kmem_region"
    module = "cxl_core"
    id = CXL_DEVICE_SYSRAM

    def probe(self, sysram: SysramRegion) -> None:
        if sysram.online_type is None:
            raise sysram.dbg("online_type not set", errno.ENODEV)
        sysram.devm_add_child(CxlDaxRegion(self.kernel, sysram.region, parent=sysram, kmem=True,
                                           online_type=sysram.online_type))


DRIVERS = (CxlSysramRegionDriver, CxlDevdaxRegionDriver, CxlDaxKmemRegionDriver)
DEVICE_TYPES = (SysramRegion,)
