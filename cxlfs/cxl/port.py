"""CXL ports (root, host bridge / switch, endpoint) and their downstream ports (drivers/cxl/core/port.c)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..core.attrs import attr
from ..core.device import Device
from .bus import CXL_DEVICE_PORT, CXL_DEVICE_ROOT, CXLDevice

if TYPE_CHECKING:
    from .decoder import Decoder
    from .memdev import Memdev


@dataclass(eq=False)
class Dport:
    """A downstream port of a CXL port: ``dport<id>`` links to the device behind it."""
    id: int
    dev: Device
    port: "CXLPort"

    def __repr__(self) -> str:
        return f"<Dport {self.port.name}/dport{self.id} -> {self.dev.name}>"


@dataclass(eq=False)
class PortTopology:
    """Static facts from the platform: how many HDM decoders and target slots a port has."""
    nr_decoders: int = 8
    nr_targets: int = 2
    dport_devs: list = field(default_factory=list)      # (id, device) enumerated at probe


class CXLPort(CXLDevice):
    devtype = "cxl_port"
    cxl_id = CXL_DEVICE_PORT

    def __init__(self, kernel, port_id: int, parent, uport: Device, parent_dport: Dport | None,
                 hw: PortTopology | None = None, name: str | None = None):
        super().__init__(kernel, name or f"port{port_id}", parent)
        self.port_id = port_id
        self.uport = uport
        self.parent_dport = parent_dport
        self.hw = hw or PortTopology()
        self.dports: dict[int, Dport] = {}
        self.decoders: list[Decoder] = []
        self.commit_end = -1        # highest committed decoder id (decoders_committed - 1)
        self.endpoints: list[Memdev] = []   # memdevs enumerated through this port
        self.link("uport", uport)
        if parent_dport is not None:
            self.link("parent_dport", parent_dport.dev)

    @property
    def parent_port(self) -> "CXLPort | None":
        p = self.parent
        return p if isinstance(p, CXLPort) else None

    @property
    def depth(self) -> int:
        d, p = 0, self.parent_port
        while p is not None:
            d += 1
            p = p.parent_port
        return d

    def is_root(self) -> bool:
        return False

    def is_endpoint(self) -> bool:
        return False

    def add_dport(self, dport_id: int, dev: Device) -> Dport:
        dport = Dport(dport_id, dev, self)
        self.dports[dport_id] = dport
        self.link(f"dport{dport_id}", dev)
        self.touch()
        return dport

    def remove_dports(self) -> None:
        for dport_id in list(self.dports):
            self.unlink(f"dport{dport_id}")
        self.dports.clear()
        self.touch()

    def dport_for(self, dev: Device) -> Dport | None:
        for d in self.dports.values():
            if d.dev is dev:
                return d
        return None

    def child_ports(self) -> list["CXLPort"]:
        return [d for d in self._child_devices if isinstance(d, CXLPort)]

    def on_remove(self) -> None:
        self.kernel.cxl.port_ida.free(self.port_id)

    @attr.ro
    def decoders_committed(self) -> str:
        return f"{self.commit_end + 1}\n"


class RootPort(CXLPort):
    """root0: published by cxl_acpi for the ACPI0017 device; never bound to a driver."""
    cxl_id = CXL_DEVICE_ROOT

    def __init__(self, kernel, port_id: int, parent, uport: Device):
        super().__init__(kernel, port_id, parent, uport, None, name=f"root{port_id}")

    def is_root(self) -> bool:
        return True

    # decoders_committed is a port attribute of every kind, the root's reads 0 forever
    def __repr__(self) -> str:
        return f"<RootPort {self.name}>"


class EndpointPort(CXLPort):
    def __init__(self, kernel, port_id: int, parent, memdev: "Memdev", parent_dport: Dport):
        super().__init__(kernel, port_id, parent, memdev, parent_dport,
                         hw=PortTopology(nr_decoders=memdev.hw.nr_decoders, nr_targets=0),
                         name=f"endpoint{port_id}")
        self.memdev = memdev
        self.hdm_end = -1          # highest decoder id holding a DPA allocation

    def is_endpoint(self) -> bool:
        return True

    def on_remove(self) -> None:
        super().on_remove()
        # the port went away under the memdev (root or parent port removed): detach it
        if self.memdev.driver is not None and self.memdev.endpoint is self:
            self.kernel.defer(lambda: self.kernel.release_driver(self.memdev)
                              if self.memdev.endpoint is self else None)
