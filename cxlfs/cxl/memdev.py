"""Memory devices memN (core/memdev.c) and their device-physical-address space (core/hdm.c)."""
from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.attrs import attr
from ..core.chardev import CharDevice
from ..core.errors import KernelError
from ..core.parse import WriteBuf, hex_prefixed, kstrtobool
from .bus import CXL_DEVICE_MEMORY_EXPANDER, CXLDevice

if TYPE_CHECKING:
    from .decoder import EndpointDecoder
    from .port import EndpointPort


@dataclass
class Partition:
    mode: str       # "ram" | "pmem"
    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass
class MemdevHW:
    """What the device reports over its mailbox (cxl_test: mem.c)."""
    ram: int = 1 << 30
    pmem: int = 1 << 30
    serial: int = 0
    numa_node: int = -1
    firmware_version: str = "mock fw v1 "
    payload_max: int = 4096
    label_storage_size: int = 128 << 10
    qos_class: int = 42
    nr_decoders: int = 8


class DpaSpace:
    """DPA allocations in decoder-id order (the kernel's hdm_end rule) and partition order."""

    def __init__(self, memdev: "Memdev"):
        self.memdev = memdev

    def _port(self) -> "EndpointPort":
        port = self.memdev.endpoint
        assert port is not None
        return port

    def allocated(self) -> list["EndpointDecoder"]:
        return [d for d in self._port().decoders if d.dpa_start is not None]

    def free(self, cxled: "EndpointDecoder") -> None:
        """cxl_dpa_free(): only the highest allocation may go, and not while in use."""
        if cxled.dpa_start is None:
            return
        if cxled.region is not None:
            raise cxled.dbg(f"decoder assigned to: {cxled.region.name}", errno.EBUSY)
        if cxled.committed:
            raise cxled.dbg("decoder enabled", errno.EBUSY)
        port = self._port()
        if cxled.index != port.hdm_end:
            raise cxled.dbg(f"expected decoder{port.port_id}.{port.hdm_end}", errno.EBUSY)
        cxled.dpa_start = None
        cxled.dpa_size = 0
        cxled.skip = 0
        port.hdm_end -= 1

    def alloc(self, cxled: "EndpointDecoder", size: int) -> None:
        """cxl_dpa_alloc(): from the end of the last allocation, in the decoder's partition."""
        if cxled.region is not None:
            raise cxled.dbg(f"decoder assigned to: {cxled.region.name}", errno.EBUSY)
        if cxled.committed:
            raise cxled.dbg("decoder enabled", errno.EBUSY)
        part = self.memdev.partition(cxled.mode)
        if part is None:
            raise cxled.dbg("mode not set", errno.EBUSY)
        end = max((d.dpa_start + d.dpa_size for d in self.allocated()), default=0)
        start = max(part.start, end)
        avail = max(part.end - start, 0)
        if size > avail:
            raise cxled.dbg(f"insufficient {part.mode} capacity: {hex_prefixed(avail)} available, "
                            f"{hex_prefixed(size)} requested", errno.ENOSPC)
        port = self._port()
        if cxled.index != port.hdm_end + 1:
            raise cxled.dbg(f"expected decoder{port.port_id}.{port.hdm_end + 1}", errno.EBUSY)
        cxled.skip = start - end
        cxled.dpa_start = start
        cxled.dpa_size = size
        port.hdm_end = cxled.index

    def available(self, mode: str) -> int:
        part = self.memdev.partition(mode)
        if part is None or self.memdev.endpoint is None:
            return 0
        end = max((d.dpa_start + d.dpa_size for d in self.allocated()), default=0)
        return max(part.end - max(part.start, end), 0)


class Memdev(CharDevice, CXLDevice):
    """memN: a CXL type-3 memory expander, char device /dev/cxl/memN."""

    devtype = "cxl_memdev"
    cxl_id = CXL_DEVICE_MEMORY_EXPANDER
    devnode_dir = "cxl/"

    def __init__(self, kernel, memdev_id: int, parent, hw: MemdevHW, attach):
        super().__init__(kernel, f"mem{memdev_id}", parent)
        self.memdev_id = memdev_id
        self.hw = hw
        self.attach = attach          # the dport device (switch DSP / root port / RCH) below which it sits
        self.devt = (kernel.cxl.memdev_major, memdev_id)
        self.partitions: list[Partition] = []
        if hw.ram:
            self.partitions.append(Partition("ram", 0, hw.ram))
        if hw.pmem:
            self.partitions.append(Partition("pmem", hw.ram, hw.pmem))
        self.endpoint: EndpointPort | None = None
        self.dpa = DpaSpace(self)
        self.security_state = "disabled"
        self.sanitizing = False

    def on_remove(self) -> None:
        self.kernel.cxl.memdev_ida.free(self.memdev_id)

    def partition(self, mode: str) -> Partition | None:
        for p in self.partitions:
            if p.mode == mode:
                return p
        return None

    # memN has no devtype/modalias files (its groups leave the cxl base group out)
    hidden_attributes = ("devtype", "modalias")

    @attr.ro
    def serial(self) -> str:
        return f"{hex_prefixed(self.hw.serial)}\n"

    @attr.ro
    def firmware_version(self) -> str:
        return f"{self.hw.firmware_version}\n"

    @attr.ro
    def payload_max(self) -> str:
        return f"{self.hw.payload_max}\n"

    @attr.ro
    def label_storage_size(self) -> str:
        return f"{self.hw.label_storage_size}\n"

    @attr.ro
    def numa_node(self) -> str:
        return f"{self.hw.numa_node}\n"

    @attr.ro(name="size", group="ram")
    def ram_size(self) -> str:
        return f"{hex_prefixed(self.hw.ram)}\n"

    @attr.ro(name="qos_class", group="ram", visible=lambda self: 0o444 if self.hw.ram else 0)
    def ram_qos_class(self) -> str:
        return f"{self.hw.qos_class}\n"

    @attr.ro(name="size", group="pmem")
    def pmem_size(self) -> str:
        return f"{hex_prefixed(self.hw.pmem)}\n"

    @attr.ro(name="qos_class", group="pmem", visible=lambda self: 0o444 if self.hw.pmem else 0)
    def pmem_qos_class(self) -> str:
        return f"{self.hw.qos_class}\n"

    @attr.ro(name="state", group="security")
    def security_state(self) -> str:
        return "sanitize\n" if self.sanitizing else f"{self.security_state}\n"

    def _security_op(self, buf: WriteBuf) -> None:
        if not kstrtobool(buf):
            raise KernelError(errno.EINVAL)
        if self.endpoint is not None and any(d.committed for d in self.endpoint.decoders):
            raise self.dbg("sanitize/erase refused: decoders are committed", errno.EBUSY)
        self.log("info", "security operation completed")

    @attr.wo(name="sanitize", group="security")
    def security_sanitize(self, buf: WriteBuf) -> None:
        self._security_op(buf)

    @attr.wo(name="erase", group="security")
    def security_erase(self, buf: WriteBuf) -> None:
        self._security_op(buf)

    @attr.wo(visible=lambda self: 0o200 if self.driver is not None else 0)
    def trigger_poison_list(self, buf: WriteBuf) -> None:
        if not kstrtobool(buf):
            raise KernelError(errno.EINVAL)
