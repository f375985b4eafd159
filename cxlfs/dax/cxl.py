"""The CXL side of DAX: dax_regionN on the cxl bus and its driver (drivers/dax/cxl.c,
drivers/cxl/core/region_dax.c)."""
from __future__ import annotations

from ..cxl.bus import CXL_DEVICE_DAX_REGION, CXLDevice, CXLDriver
from .bus import SZ_2M, DaxRegion, dax_region_group


class CxlDaxRegion(CXLDevice):
    """dax_regionN: the bridge from a committed RAM region to the dax core."""

    devtype = "cxl_dax_region"
    cxl_id = CXL_DEVICE_DAX_REGION

    def __init__(self, kernel, region, parent=None, *, kmem: bool = True, online_type: int | None = None):
        super().__init__(kernel, f"dax_region{region.id}", parent or region)
        self.region = region
        self.dax_region: DaxRegion | None = None
        self.kmem = kmem                  # IORESOURCE_DAX_KMEM: its devices default to kmem
        self.online_type = online_type    # proposals: an explicit type for kmem (None: default)


for _a in dax_region_group(visible=lambda dev: dev.driver is not None):
    CxlDaxRegion.sysfs_attributes[_a.path] = _a


def add_dax_region(region) -> None:
    """dax_regionN (cxl_dax_region) under the region; nothing if the range is already System RAM."""
    mm = region.kernel.mm
    if mm.busy_system_ram(region.hpa_start, region.hpa_size):
        region.log("debug", f"{region.name}: range already System RAM, no dax region")
        return
    region.devm_add_child(CxlDaxRegion(region.kernel, region))


class CxlDaxRegionDriver(CXLDriver):
    """cxl_dax_region (module dax_cxl): one dax region, one dev_dax over all of it."""

    name = "cxl_dax_region"
    module = "dax_cxl"
    id = CXL_DEVICE_DAX_REGION
    suppress_bind_attrs = True

    def probe(self, dev: CxlDaxRegion) -> None:
        kernel = self.kernel
        region = dev.region
        nid = region.cxlrd.target_node
        dax_region = DaxRegion(kernel, region.id, region.hpa_start, region.hpa_size, align=SZ_2M,
                               target_node=nid, kmem=dev.kmem, owner=dev)
        dev.dax_region = dax_region
        dev.devm(lambda: setattr(dev, "dax_region", None))
        dev_dax = dax_region.create_device(region.hpa_size, memmap_on_memory=True)
        if dev.online_type is not None:
            dev_dax.online_type = dev.online_type
        dev.devm_add_child(dev_dax)
        dev.devm(lambda: [kernel.device_unregister(d) for d in list(dax_region.devices)])
