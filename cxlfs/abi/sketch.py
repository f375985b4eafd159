"""The design sketch discussed on linux-cxl, Jan-Mar 2026:

    echo regionN > /sys/bus/cxl/drivers/sysram_region/bind
    echo online_movable > /sys/bus/cxl/devices/dax_regionN/hotplug
    echo dax_regionN > /sys/bus/cxl/drivers/dax_region/bind

``sysram_region`` binds a committed RAM region and creates an unbound ``dax_regionN``;
its ``hotplug`` file records the online type; the ``dax_region`` driver (cxl_dax_region
with bind files) refuses to bind until it is set, then builds the kmem device with it.
Regions bound the mainline way (cxl_region) get a dax_regionN that uses the system default.
"""
from __future__ import annotations

import errno

from ..core.attrs import attr
from ..core.parse import WriteBuf
from ..cxl.bus import CXL_DEVICE_DAX_REGION, CXL_DEVICE_REGION, CXLDriver
from ..cxl.region import Region
from ..dax.cxl import CxlDaxRegion, CxlDaxRegionDriver
from ..mm.zones import parse_online_type
from .explicit import ONLINE_TYPE_VALUES, _ram_committed, online_type_name

class HotplugDaxRegion(CxlDaxRegion):
    """dax_regionN with the sketch's ``hotplug`` attribute."""

    def __init__(self, kernel, region: Region, *, hotplug: int | None):
        super().__init__(kernel, region, kmem=True, online_type=hotplug)
        self.hotplug_set = hotplug is not None

    @attr.rw(values=tuple(ONLINE_TYPE_VALUES))
    def hotplug(self) -> str:
        if self.hotplug_set and self.online_type is None:
            return "default\n"
        return f"{online_type_name(self.online_type if self.hotplug_set else None)}\n"

    @hotplug.store
    def hotplug(self, buf: WriteBuf) -> None:
        value = parse_online_type(buf, ONLINE_TYPE_VALUES)
        if self.driver is not None:
            raise self.dbg("hotplug is fixed while dax_region is bound", errno.EBUSY)
        self.online_type = value
        self.hotplug_set = True


class SysramRegionDriver(CXLDriver):
    name = "sysram_region"
    module = "cxl_core"
    id = CXL_DEVICE_REGION

    def probe(self, region: Region) -> None:
        _ram_committed(region)
        region.devm_add_child(HotplugDaxRegion(self.kernel, region, hotplug=None))


class DaxRegionDriver(CxlDaxRegionDriver):
    """cxl_dax_region renamed dax_region, with bind/unbind files."""

    name = "dax_region"
    suppress_bind_attrs = False
    id = CXL_DEVICE_DAX_REGION

    def probe(self, dev: CxlDaxRegion) -> None:
        if isinstance(dev, HotplugDaxRegion) and not dev.hotplug_set:
            raise dev.dbg("hotplug not set", errno.ENODEV)
        super().probe(dev)


def add_hotplug_dax_region(region: Region) -> None:
    """dax_regionN with hotplug preset to the system default (the cxl_region path)."""
    if region.kernel.mm.busy_system_ram(region.hpa_start, region.hpa_size):
        return
    dev = HotplugDaxRegion(region.kernel, region, hotplug=None)
    dev.hotplug_set = True
    region.devm_add_child(dev)


DRIVERS = (SysramRegionDriver,)
DEVICE_TYPES = (HotplugDaxRegion,)
