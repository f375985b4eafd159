"""cxl_acpi: turns the ACPI0017 device, CEDT host bridges and CFMWS windows into root0."""
from __future__ import annotations

from ..core.platform import PlatformDriver
from .core import NvdimmBridge
from .decoder import (CXL_DECODER_F_LOCK, CXL_DECODER_F_PMEM, CXL_DECODER_F_RAM,
                      CXL_DECODER_F_TYPE3, RootDecoder)
from .platform import CXLRootDevice
from .port import PortTopology, RootPort

SZ_256M = 256 << 20


def window_starts(topo) -> list[int]:
    """CFMWS bases: carved one after another from the platform's CXL address range."""
    starts, cursor = [], topo.window_base
    for w in topo.windows:
        if w.start is not None:
            starts.append(w.start)
            continue
        cursor = (cursor + SZ_256M - 1) // SZ_256M * SZ_256M
        starts.append(cursor)
        cursor += w.size
    return starts


class CXLAcpiDriver(PlatformDriver):
    name = "cxl_acpi"
    module = "cxl_acpi"
    names = ("cxl_acpi", "ACPI0017")

    def probe(self, acpi: CXLRootDevice) -> None:
        kernel = self.kernel
        cxl = kernel.cxl
        topo = cxl.topo
        root = RootPort(kernel, cxl.port_ida.alloc(), acpi, acpi)
        cxl.root = root
        acpi.devm(lambda: self._forget_root(root))
        kernel.device_add(root)
        acpi.devm(lambda: kernel.device_unregister(root))
        host_bridges = cxl.host_bridge_devs
        for hb in host_bridges:
            root.add_dport(hb.uid, hb)
        nodes = topo.window_nodes()
        for i, (w, start) in enumerate(zip(topo.windows, window_starts(topo))):
            flags = CXL_DECODER_F_TYPE3
            flags |= CXL_DECODER_F_RAM if "ram" in w.types else 0
            flags |= CXL_DECODER_F_PMEM if "pmem" in w.types else 0
            flags |= CXL_DECODER_F_LOCK if w.locked else 0
            targets = [root.dports[next(h.uid for h in host_bridges if h.name == t)] for t in w.targets]
            # x1 windows decode at the minimum granularity whatever CFMWS says
            granularity = w.granularity if len(targets) > 1 else 256
            cxlrd = RootDecoder(kernel, root, i, start=start, size=w.size, targets=targets,
                                granularity=granularity, flags=flags, qos_class=w.qos_class,
                                xor=w.xor, target_node=nodes[i])
            cxlrd.region_id = cxl.memregion_ida.alloc()
            root.decoders.append(cxlrd)
            kernel.device_add(cxlrd)
        bridge = NvdimmBridge(kernel, f"nvdimm-bridge{cxl.nvdimm_bridge_ida.alloc()}", root)
        kernel.device_add(bridge)
        for hb in host_bridges:
            if hb.rch:
                continue
            hw = PortTopology(hb.nr_decoders, hb.nr_targets, [(rp.port_number, rp) for rp in hb.dport_devs])
            cxl.hb_ports[hb] = cxl.add_port(root, hb, root.dports[hb.uid], hw)
        # cxl_bus_rescan(): memdevs that lost their ports with a previous root come back
        kernel.defer(lambda: [kernel.device_attach(d) for d in list(kernel.buses["cxl"].devices.values())
                              if d.driver is None and not d.dead])

    def _forget_root(self, root: RootPort) -> None:
        cxl = self.kernel.cxl
        cxl.root = None
        cxl.hb_ports.clear()
