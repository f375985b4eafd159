"""The platform bus: where cxl_test's mock ACPI0017, host bridges, ports and memdevs live."""
from __future__ import annotations

import errno
from typing import ClassVar

from .attrs import attr
from .device import Bus, Device, Driver
from .errors import KernelError
from .parse import WriteBuf


class PlatformBus(Bus):
    name = "platform"

    def match(self, dev: Device, drv: Driver) -> bool:
        override = getattr(dev, "driver_override", "")
        if override:
            return override == drv.name
        return drv.match(dev)

    def device_uevent(self, dev: Device) -> list[tuple[str, str]]:
        return [("MODALIAS", f"platform:{dev.base_name}")]


class PlatformDevice(Device):
    """platform_device "<base_name>.<id>" (id -1: no suffix)."""

    bus_name = "platform"
    has_power = True

    def __init__(self, kernel, base_name: str, pid: int, parent, *, numa_node: int = -1):
        name = base_name if pid < 0 else f"{base_name}.{pid}"
        super().__init__(kernel, name, parent)
        self.base_name = base_name
        self.pid = pid
        self.numa_node = numa_node
        self.driver_override = ""

    @attr.ro
    def modalias(self) -> str:
        return f"platform:{self.base_name}\n"

    @attr.rw
    def driver_override(self) -> str:
        return f"{self.driver_override or '(null)'}\n"

    @driver_override.store
    def driver_override(self, buf: WriteBuf) -> None:
        text = buf.rstrip("\n")
        if len(text) >= 4096:
            raise KernelError(errno.EINVAL)
        self.driver_override = text


class PlatformDriver(Driver):
    bus_name = "platform"
    names: ClassVar[tuple[str, ...]] = ()     # platform_device_id table: base names it binds

    def match(self, dev: Device) -> bool:
        return getattr(dev, "base_name", None) in (self.names or (self.name,))
