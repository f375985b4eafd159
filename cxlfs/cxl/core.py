"""cxl_core's shared state and the port/memdev drivers (core/port.c, port.c, mem.c, pmem.c).

Port enumeration follows ``devm_cxl_enumerate_ports``: a memdev probing walks the platform
devices above it, creating the switch ports that do not exist yet (owned by the parent
port's driver, like devm on the parent) and its endpoint port; every port on the way must
be bound to cxl_port or the memdev probe fails with ENXIO.  Switch ports go away again when
the last memdev below them unbinds.
"""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ..core.device import Device
from ..core.errors import KernelError
from ..core.ida import IDA
from .bus import (CXL_DEVICE_MEMORY_EXPANDER, CXL_DEVICE_NVDIMM, CXL_DEVICE_NVDIMM_BRIDGE,
                  CXL_DEVICE_PORT, CXLDevice, CXLDriver)
from .decoder import EndpointDecoder, SwitchDecoder
from .memdev import Memdev, MemdevHW
from .platform import DownstreamPortDevice, HostBridgeDevice, MockMemDevice, SwitchUportDevice
from .auto import discover_endpoint, program_port
from .port import CXLPort, Dport, EndpointPort, PortTopology

if TYPE_CHECKING:
    from ..core.kernel import Kernel
    from ..topology.spec import Topology
    from .port import RootPort


class CXLCore:
    """What drivers/cxl/core keeps globally: id allocators, the root, the region machinery."""

    def __init__(self, kernel: "Kernel", topo: "Topology", memdev_major: int):
        from .region import Regions
        self.kernel = kernel
        self.topo = topo
        self.port_ida = IDA()
        self.memdev_ida = IDA()
        self.memregion_ida = IDA()
        self.nvdimm_bridge_ida = IDA()
        self.memdev_major = memdev_major
        self.root: RootPort | None = None
        self.hb_ports: dict[HostBridgeDevice, CXLPort] = {}
        self.host_bridge_devs: list[HostBridgeDevice] = []
        self.regions = Regions(self)
        self.auto_programmed: set[str] = set()    # memdevs whose firmware decoders were consumed

    # ==== ports =========================================================================
    def all_ports(self) -> list[CXLPort]:
        out: list[CXLPort] = []

        def walk(port: CXLPort) -> None:
            out.append(port)
            for child in port.child_ports():
                walk(child)
        if self.root is not None and not self.root.dead:
            walk(self.root)
        return out

    def add_port(self, parent: CXLPort, uport: Device, parent_dport: Dport, hw: PortTopology) -> CXLPort:
        port = CXLPort(self.kernel, self.port_ida.alloc(), parent, uport, parent_dport, hw)
        self.kernel.device_add(port)
        return port

    def port_path(self, memdev_dev: MockMemDevice) -> list[tuple[Device, DownstreamPortDevice | HostBridgeDevice]]:
        """(uport device, dport device) pairs from the host bridge down to the memdev."""
        chain = []
        d = memdev_dev.parent
        if isinstance(d, HostBridgeDevice):          # RCD right below an RCH
            return [(d, d)]
        while True:
            up = d.parent
            chain.append((up, d))
            if isinstance(up, HostBridgeDevice):
                break
            if not isinstance(up, SwitchUportDevice):
                raise KernelError(errno.ENXIO, f"{d.name}: not below a CXL host bridge")
            d = up.parent
        return chain[::-1]

    def enumerate_ports(self, memdev: Memdev) -> tuple[CXLPort, Dport]:
        """devm_cxl_enumerate_ports(): the parent port and dport of the memdev's endpoint."""
        path = self.port_path(memdev.parent)
        hb, first = path[0]
        if hb is first:                          # RCH: the endpoint hangs off root0's dport
            dport = self.root.dport_for(hb) if self.root else None
            if dport is None:
                raise memdev.dbg(f"host bridge {hb.name} not enumerated", errno.ENXIO)
            return self.root, dport
        port = self.hb_ports.get(hb)
        if port is None or port.dead:
            raise memdev.dbg(f"host bridge {hb.name} has no CXL port", errno.ENXIO)
        for uport_dev, dport_dev in path:
            if uport_dev is not hb:
                port = self._switch_port(port, uport_dev, memdev)
            if port.driver is None:
                msg = f"port {port.name}:{port.uport.name} disabled, failed to enumerate CXL.mem"
                memdev.log("warn", msg)
                raise KernelError(errno.ENXIO, msg)
            dport = port.dport_for(dport_dev)
            if dport is None:
                raise memdev.dbg(f"{dport_dev.name} is not a dport of {port.name}", errno.ENXIO)
        return port, dport

    def _switch_port(self, parent: CXLPort, uport_dev: SwitchUportDevice, memdev: Memdev) -> CXLPort:
        for child in parent.child_ports():
            if child.uport is uport_dev and not child.dead:
                return child
        if parent.driver is None:
            raise memdev.dbg(f"port {parent.name} disabled", errno.ENXIO)
        parent_dport = parent.dport_for(uport_dev.parent)
        if parent_dport is None:
            raise memdev.dbg(f"{uport_dev.parent.name} is not a dport of {parent.name}", errno.ENXIO)
        hw = PortTopology(uport_dev.nr_decoders, uport_dev.nr_targets,
                          [(d.port_number, d) for d in uport_dev.dport_devs])
        port = CXLPort(self.kernel, self.port_ida.alloc(), parent, uport_dev, parent_dport, hw)
        self.kernel.device_add(port)
        # owned by the parent port's driver: unbinding the parent deletes it
        parent.devm(lambda: self.delete_port(port))
        return port

    def delete_port(self, port: CXLPort) -> None:
        self.kernel.device_unregister(port)

    # ==== memdevs =======================================================================
    def add_memdev(self, pdev: MockMemDevice) -> Memdev:
        spec = pdev.spec
        hw = MemdevHW(ram=spec.ram, pmem=spec.pmem, serial=spec.serial, numa_node=pdev.numa_node,
                      nr_decoders=spec.nr_decoders)
        memdev = Memdev(self.kernel, self.memdev_ida.alloc(), pdev, hw, pdev.parent)
        pdev.memdev = memdev
        self.kernel.device_add(memdev)
        return memdev

    def detach_memdevs_below(self, port: CXLPort) -> None:
        """Unbinding a port unbinds every memdev enumerated through it (schedule_detach)."""
        for memdev in list(port.endpoints):
            if memdev.driver is not None:
                self.kernel.release_driver(memdev)


class CXLPortDriver(CXLDriver):
    """cxl_port: enumerates dports and HDM decoders of switch / host-bridge / endpoint ports."""

    name = "cxl_port"
    module = "cxl_port"
    id = CXL_DEVICE_PORT

    def probe(self, port: CXLPort) -> None:
        kernel = self.kernel
        if isinstance(port, EndpointPort):
            for i in range(port.hw.nr_decoders):
                port.decoders.append(port.devm_add_child(EndpointDecoder(kernel, port, i)))
            port.devm(lambda: self._forget_decoders(port))
            discover_endpoint(kernel.cxl, port)
            return
        for dport_id, dev in port.hw.dport_devs:
            port.add_dport(dport_id, dev)
        port.devm(port.remove_dports)
        for i in range(port.hw.nr_decoders):
            decoder = SwitchDecoder(kernel, port, i, port.hw.nr_targets)
            # an idle decoder's target list holds the dports in enumeration order
            decoder.targets = list(port.dports.values())[:port.hw.nr_targets]
            port.decoders.append(port.devm_add_child(decoder))
        port.devm(lambda: self._forget_decoders(port))
        program_port(kernel.cxl, port)

    def _forget_decoders(self, port: CXLPort) -> None:
        port.decoders = []
        port.commit_end = -1
        if isinstance(port, EndpointPort):
            port.hdm_end = -1

    def remove(self, port: CXLPort) -> None:
        self.kernel.cxl.detach_memdevs_below(port)


class CXLMemDriver(CXLDriver):
    """cxl_mem: a memdev is usable once its endpoint port exists and is bound."""

    name = "cxl_mem"
    module = "cxl_mem"
    id = CXL_DEVICE_MEMORY_EXPANDER

    def probe(self, memdev: Memdev) -> None:
        kernel = self.kernel
        cxl = kernel.cxl
        parent, parent_dport = cxl.enumerate_ports(memdev)
        endpoint = EndpointPort(kernel, cxl.port_ida.alloc(), parent, memdev, parent_dport)
        memdev.endpoint = endpoint
        path = [parent] + [p for p in _ancestors(parent)]
        for port in path:
            port.endpoints.append(memdev)

        def detach() -> None:
            # cxl_detach_ep(): drop the memdev from every port above; empty switch ports go
            # (from the cxl workqueue, so a port being unbound is not deleted under itself)
            for port in path:
                if memdev in port.endpoints:
                    port.endpoints.remove(memdev)
            for port in path:
                if not port.endpoints and _is_switch_port(port):
                    kernel.defer(lambda p=port: cxl.delete_port(p) if not p.endpoints else None)
        memdev.devm(detach)
        memdev.devm(lambda: setattr(memdev, "endpoint", None))
        kernel.device_add(endpoint)
        memdev.devm(lambda: cxl.delete_port(endpoint))
        if endpoint.driver is None:
            raise memdev.err(f"{endpoint.name} failed probe", errno.ENXIO)
        if memdev.hw.pmem:
            memdev.devm_add_child(CXLNvdimm(kernel, memdev))

    def remove(self, memdev: Memdev) -> None:
        pass


def _ancestors(port: CXLPort):
    p = port.parent_port
    while p is not None:
        yield p
        p = p.parent_port


def _is_switch_port(port: CXLPort) -> bool:
    """Ports created by memdev enumeration: not the root, not host bridges, not endpoints."""
    parent = port.parent_port
    return parent is not None and not parent.is_root() and not port.is_endpoint()


class NvdimmBridge(CXLDevice):
    devtype = "cxl_nvdimm_bridge"
    cxl_id = CXL_DEVICE_NVDIMM_BRIDGE


class CXLNvdimm(CXLDevice):
    """pmemN below a pmem-capable memN (its id is the memdev's)."""

    devtype = "cxl_nvdimm"
    cxl_id = CXL_DEVICE_NVDIMM

    def __init__(self, kernel, memdev: Memdev):
        super().__init__(kernel, f"pmem{memdev.memdev_id}", memdev)


class NvdimmBridgeDriver(CXLDriver):
    name = "cxl_nvdimm_bridge"
    module = "cxl_pmem"
    id = CXL_DEVICE_NVDIMM_BRIDGE
    suppress_bind_attrs = True


class NvdimmDriver(CXLDriver):
    name = "cxl_nvdimm"
    module = "cxl_pmem"
    id = CXL_DEVICE_NVDIMM
