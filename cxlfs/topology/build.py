"""Boot: turn a Topology into a Kernel with every driver bound as after a real boot."""
from __future__ import annotations

from dataclasses import dataclass

from ..core.kernel import Kernel
from ..core.platform import PlatformBus
from ..cxl.acpi import CXLAcpiDriver
from ..cxl.bus import CXLBus
from ..cxl.core import CXLCore, CXLMemDriver, CXLPortDriver, NvdimmBridgeDriver, NvdimmDriver
from ..cxl.platform import (CXLMockMemDriver, CXLRootDevice, HostBridgeDevice, MockMemDevice,
                            RootPortDevice, SwitchDportDevice, SwitchUportDevice, split_name)
from ..cxl.region import CXLPmemRegionDriver, CXLRegionDriver, add_pmem_region
from ..dax.bus import DaxBus, DeviceDaxDriver
from ..dax.cxl import CxlDaxRegionDriver, add_dax_region
from ..dax.kmem import KmemDriver
from ..mm.memory import MemoryBus, MemoryHotplug, register_module_params
from ..mm.node import MemoryTierBus, NodeBus, NodeSubsys
from .spec import Topology, TopologyError

# cxl_core registers cxl_region first; the rest in module load order
MAINLINE_CXL_DRIVERS = (CXLRegionDriver, CXLPortDriver, CXLMemDriver, NvdimmBridgeDriver, NvdimmDriver,
                        CXLPmemRegionDriver, CxlDaxRegionDriver)

# modules libkmod may ask about: each gets /sys/module/<name>/initstate = live
MODULES = ("cxl_core", "cxl_acpi", "cxl_port", "cxl_mem", "cxl_pmem", "cxl_mock", "cxl_test",
           "cxl_mock_mem", "libnvdimm", "dax", "dax_cxl", "dax_hmem", "device_dax", "kmem")


@dataclass
class Majors:
    cxl: int
    dax: int


def free_char_majors(count: int = 2) -> list[int]:
    """Dynamic char majors the host does not use, so /dev nodes never alias a real driver."""
    used = set()
    try:
        section = None
        for line in open("/proc/devices"):
            line = line.strip()
            if line.endswith("devices:"):
                section = line
            elif line and section and section.startswith("Character"):
                used.add(int(line.split()[0]))
    except OSError:
        pass
    free = [m for m in range(254, 233, -1) if m not in used]
    if len(free) < count:
        free += [m for m in range(511, 383, -1) if m not in used]
    return free[:count]


def build(topo: Topology, majors: Majors | None = None, profile: str = "mainline",
          options: dict[str, str] | None = None) -> Kernel:
    """Boot ``topo`` under an ABI profile (see cxlfs.abi.profiles)."""
    from ..abi.profiles import get_profile
    prof = get_profile(profile)
    if majors is None:
        cxl_major, dax_major = free_char_majors(2)
        majors = Majors(cxl_major, dax_major)
    kernel = Kernel()
    kernel.topology = topo
    kernel.majors = majors
    kernel.profile = prof
    for bus in (PlatformBus, CXLBus, MemoryBus, NodeBus, MemoryTierBus, DaxBus):
        kernel.bus_register(bus(kernel))
    boot_memory(kernel, topo)
    kernel.cxl = CXLCore(kernel, topo, majors.cxl)
    kernel.cxl.region_backends = {"ram": add_dax_region, "pmem": add_pmem_region}
    for name in MODULES:
        kernel.module(name)
    prof.setup(kernel, prof.parse_options(options or {}))
    for drv in (DeviceDaxDriver, KmemDriver):
        kernel.driver_register(drv(kernel))
    for drv in prof.cxl_drivers(MAINLINE_CXL_DRIVERS):
        kernel.driver_register(drv(kernel))
    add_platform_devices(kernel, topo)
    kernel.driver_register(CXLAcpiDriver(kernel))
    kernel.driver_register(CXLMockMemDriver(kernel))
    kernel.settle()
    return kernel


def boot_memory(kernel: Kernel, topo: Topology) -> None:
    """DRAM nodes as the firmware reported them: online blocks, CPUs, memory tier 4."""
    mm = kernel.mm = MemoryHotplug(kernel, topo.block_size, topo.auto_online_blocks, topo.memmap_on_memory)
    register_module_params(kernel, mm.policy)
    cpus, next_cpu = {}, 0
    for n in topo.nodes:
        cpus[n.id] = list(range(next_cpu, next_cpu + n.cpus))
        next_cpu += n.cpus
    nodes = NodeSubsys(kernel, mm, cpus, possible=topo.window_nodes())
    start = 0
    for n in topo.nodes:
        nodes.try_online_node(n.id)
        if n.memory:
            size = n.memory // topo.block_size * topo.block_size
            mm.add_boot_memory(n.id, start, size)
            start += size


def add_platform_devices(kernel: Kernel, topo: Topology) -> None:
    if topo.provider != "cxl_test":
        raise TopologyError(f"topology.provider: '{topo.provider}' is not implemented yet")
    platform = kernel.platform
    by_name: dict = {}

    def add(dev):
        kernel.device_add(dev)
        by_name[dev.name] = dev
        return dev

    for h in topo.host_bridges:
        base, pid = split_name(h.name)
        hb = add(HostBridgeDevice(kernel, base, pid, platform, uid=h.uid, rch=h.rch,
                                  nr_decoders=h.nr_decoders, nr_targets=h.nr_targets))
        kernel.cxl.host_bridge_devs.append(hb)
    for rp in topo.root_ports:
        base, pid = split_name(rp.name)
        hb = by_name[rp.host_bridge]
        hb.dport_devs.append(add(RootPortDevice(kernel, base, pid, hb, port_number=rp.id)))
    pending = list(topo.switches)
    while pending:
        progressed = False
        for sw in list(pending):
            parent = by_name.get(sw.parent)
            if parent is None:
                continue
            base, pid = split_name(sw.name)
            uport = add(SwitchUportDevice(kernel, base, pid, parent, nr_decoders=sw.nr_decoders,
                                          nr_targets=sw.nr_targets))
            for dname, did in sw.dports:
                dbase, dpid = split_name(dname)
                uport.dport_devs.append(add(SwitchDportDevice(kernel, dbase, dpid, uport, port_number=did)))
            pending.remove(sw)
            progressed = True
        if not progressed:
            raise TopologyError(f"switch: cannot place '{pending[0].name}' (parent loop?)")
    add(CXLRootDevice(kernel, "cxl_acpi", 0, platform))
    for m in topo.memdevs:
        base, pid = split_name(m.name)
        add(MockMemDevice(kernel, base, pid, by_name[m.attach], spec=m, numa_node=m.numa_node))
