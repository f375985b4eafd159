"""The cxl bus (drivers/cxl/core/port.c): device ids, MODALIAS, the flush file, the base attributes."""
from __future__ import annotations

import errno
from typing import ClassVar

from ..core.attrs import attr
from ..core.device import Bus, Device, Driver
from ..core.errors import KernelError
from ..core.parse import WriteBuf, sysfs_streq

# cxl_device_id(): what drivers match on and MODALIAS=cxl:t<N> shows
CXL_DEVICE_NVDIMM_BRIDGE = 1
CXL_DEVICE_NVDIMM = 2
CXL_DEVICE_PORT = 3
CXL_DEVICE_ROOT = 4
CXL_DEVICE_MEMORY_EXPANDER = 5
CXL_DEVICE_REGION = 6
CXL_DEVICE_PMEM_REGION = 7
CXL_DEVICE_DAX_REGION = 8
CXL_DEVICE_PMU = 9
CXL_DEVICE_SYSRAM = 10       # proposed (2026 series), see cxlfs.abi


class CXLBus(Bus):
    name = "cxl"

    def device_uevent(self, dev: Device) -> list[tuple[str, str]]:
        return [("MODALIAS", f"cxl:t{dev.cxl_id}")]

    def match(self, dev: Device, drv: Driver) -> bool:
        return drv.match(dev)

    @attr.wo
    def flush(self, buf: WriteBuf) -> None:
        """Flush the cxl workqueue (teardown here is synchronous, so there is nothing to wait for)."""
        if not sysfs_streq(buf, "1"):
            raise KernelError(errno.EINVAL)


class CXLDevice(Device):
    """Every device on the cxl bus: ``cxl_id`` feeds matching, modalias and uevents."""

    bus_name = "cxl"
    cxl_id: ClassVar[int] = 0

    @attr.ro
    def devtype(self) -> str:
        return f"{type(self).devtype}\n"

    @attr.ro
    def modalias(self) -> str:
        return f"cxl:t{self.cxl_id}\n"


class CXLDriver(Driver):
    """cxl_bus_match(): a driver binds the devices whose cxl_device_id equals its id."""

    bus_name = "cxl"
    id: ClassVar[int] = 0

    def match(self, dev: Device) -> bool:
        return getattr(dev, "cxl_id", None) == self.id
