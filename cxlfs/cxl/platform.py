"""The platform side of a CXL topology as cxl_test mocks it: ACPI0017, host bridges,
root ports, switch ports and the memory devices' own platform devices.

Each device nests under its upstream device, so a memdev's host path contains every
port above it -- which is how libcxl decides what a root decoder can reach."""
from __future__ import annotations

from typing import ClassVar

from ..core.platform import PlatformDevice, PlatformDriver


class CXLRootDevice(PlatformDevice):
    """ACPI0017 (cxl_acpi.0 in cxl_test): cxl_acpi binds it and publishes root0."""


class HostBridgeDevice(PlatformDevice):
    """A CXL host bridge; ``uid`` is its _UID, the dport id under root0."""

    def __init__(self, kernel, base_name, pid, parent, *, uid: int, rch: bool, nr_decoders: int,
                 nr_targets: int):
        super().__init__(kernel, base_name, pid, parent)
        self.uid = uid
        self.rch = rch
        self.nr_decoders = nr_decoders
        self.nr_targets = nr_targets
        self.dport_devs: list[DownstreamPortDevice] = []
        # libcxl realpath()s dportN/physical_node (firmware_node for an RCH) to match memdevs
        self.link("firmware_node" if rch else "physical_node", lambda: self.kdir)


class DownstreamPortDevice(PlatformDevice):
    """A root port or a switch downstream port; ``port_number`` becomes its dport id."""

    is_root_port: ClassVar[bool] = False

    def __init__(self, kernel, base_name, pid, parent, *, port_number: int):
        super().__init__(kernel, base_name, pid, parent)
        self.port_number = port_number


class RootPortDevice(DownstreamPortDevice):
    is_root_port = True


class SwitchUportDevice(PlatformDevice):
    def __init__(self, kernel, base_name, pid, parent, *, nr_decoders: int, nr_targets: int):
        super().__init__(kernel, base_name, pid, parent)
        self.nr_decoders = nr_decoders
        self.nr_targets = nr_targets
        self.dport_devs: list[DownstreamPortDevice] = []


class SwitchDportDevice(DownstreamPortDevice):
    pass


class MockMemDevice(PlatformDevice):
    """cxl_mem.N / cxl_rcd.N: cxl_test's mailbox-backed device; its driver creates memN."""

    def __init__(self, kernel, base_name, pid, parent, *, spec, numa_node: int):
        super().__init__(kernel, base_name, pid, parent, numa_node=numa_node)
        self.spec = spec
        self.memdev = None


class CXLMockMemDriver(PlatformDriver):
    """cxl_test's mem.c driver: probe registers the memdev; remove unregisters it."""

    name = "cxl_mock_mem"
    module = "cxl_mock_mem"
    names = ("cxl_mem", "cxl_rcd")

    def probe(self, dev: MockMemDevice) -> None:
        self.kernel.cxl.add_memdev(dev)

    def remove(self, dev: MockMemDevice) -> None:
        if dev.memdev is not None:
            self.kernel.device_unregister(dev.memdev)
            dev.memdev = None


def split_name(name: str) -> tuple[str, int]:
    """"cxl_mem.4" -> ("cxl_mem", 4); names without a numeric suffix get id -1."""
    base, dot, tail = name.rpartition(".")
    if dot and tail.isdigit():
        return base, int(tail)
    return name, -1
