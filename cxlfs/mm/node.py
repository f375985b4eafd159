"""NUMA nodes (drivers/base/node.c): node directories, masks, meminfo, and memory tiers."""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ..core.attrs import attr
from ..core.device import Bus, Device, SubsystemRoot
from ..core.errors import KernelError
from ..core.kernfs import KDir
from ..core.parse import WriteBuf, bitmap_list
from .zones import NodeZones

if TYPE_CHECKING:
    from ..core.kernel import Kernel
    from .memory import MemoryBlock, MemoryHotplug

DRAM_ADISTANCE = 4 * 128 + 64          # MEMTIER_ADISTANCE_DRAM
LOWTIER_ADISTANCE = 5 * DRAM_ADISTANCE  # default for kmem / CXL memory without perf data


class NodeBus(Bus):
    name = "node"


class MemoryTierBus(Bus):
    name = "memory_tiering"


class Node(Device):
    bus_name = "node"
    has_power = True

    def __init__(self, kernel: "Kernel", subsys: "NodeSubsys", nid: int, cpus: list[int]):
        super().__init__(kernel, f"node{nid}", subsys.kdir)
        self.subsys = subsys
        self.nid = nid
        self.cpus = cpus

    @property
    def zones(self) -> NodeZones:
        return self.subsys.zones(self.nid)

    @attr.ro
    def cpumap(self) -> str:
        mask = sum(1 << c for c in self.cpus)
        return f"{mask:08x}\n"

    @attr.ro
    def cpulist(self) -> str:
        return bitmap_list(self.cpus) + "\n"

    @attr.ro(depends=lambda self: (self.zones, self.subsys.mm.policy))
    def meminfo(self) -> str:
        total, used = self.subsys.memory_kb(self.nid)
        free = total - used
        n = self.nid
        lines = [("MemTotal", total), ("MemFree", free), ("MemUsed", used), ("SwapCached", 0),
                 ("Active", used // 2), ("Inactive", used // 4), ("Active(anon)", used // 4),
                 ("Inactive(anon)", 0), ("Active(file)", used // 4), ("Inactive(file)", used // 4),
                 ("Unevictable", 0), ("Mlocked", 0), ("Dirty", 0), ("Writeback", 0),
                 ("FilePages", used // 2), ("Mapped", used // 8), ("AnonPages", used // 4),
                 ("Shmem", 0), ("KernelStack", 0), ("PageTables", 0), ("SecPageTables", 0),
                 ("NFS_Unstable", 0), ("Bounce", 0), ("WritebackTmp", 0), ("KReclaimable", 0),
                 ("Slab", 0), ("SReclaimable", 0), ("SUnreclaim", 0), ("AnonHugePages", 0),
                 ("ShmemHugePages", 0), ("ShmemPmdMapped", 0), ("FileHugePages", 0),
                 ("FilePmdMapped", 0), ("Unaccepted", 0)]
        out = "".join(f"Node {n} {k + ':':<15} {v:8d} kB\n" for k, v in lines)
        out += "".join(f"Node {n} {k + ':':<15} {0:5d}\n"
                       for k in ("HugePages_Total", "HugePages_Free", "HugePages_Surp"))
        return out

    @attr.ro(depends=lambda self: (self.zones,))
    def numastat(self) -> str:
        total, used = self.subsys.memory_kb(self.nid)
        hits = used // 4
        return (f"numa_hit {hits}\nnuma_miss 0\nnuma_foreign 0\ninterleave_hit 0\n"
                f"local_node {hits}\nother_node 0\n")

    @attr.ro(depends=lambda self: (self.zones,))
    def vmstat(self) -> str:
        total, used = self.subsys.memory_kb(self.nid)
        z = self.zones
        pages = self.subsys.mm.block_size // 4096
        return (f"nr_free_pages {(total - used) // 4}\n"
                + "".join(f"nr_zone_{name.lower()}_pages {z.pages(name) * pages}\n" for name in
                          ("DMA", "DMA32", "Normal", "Movable"))
                + f"nr_inactive_anon 0\nnr_active_anon {used // 16}\nnr_inactive_file {used // 16}\n"
                f"nr_active_file {used // 16}\nnr_unevictable 0\n")

    @attr.ro(depends=lambda self: (self.subsys,))
    def distance(self) -> str:
        return " ".join(str(self.subsys.distance(self.nid, o)) for o in sorted(self.subsys.online_nodes)) + "\n"

    @attr.wo
    def compact(self, buf: WriteBuf) -> None:
        pass

    @attr.wo
    def reclaim(self, buf: WriteBuf) -> None:
        if not buf.strip():
            raise KernelError(errno.EINVAL)


class MemoryTier(Device):
    bus_name = "memory_tiering"

    def __init__(self, kernel, subsys: "NodeSubsys", tier_id: int):
        super().__init__(kernel, f"memory_tier{tier_id}", subsys.tiers_dir)
        self.subsys = subsys
        self.tier_id = tier_id
        self.nodes: set[int] = set()

    @attr.ro
    def nodelist(self) -> str:
        return bitmap_list(self.nodes) + "\n"


class NodeSubsys(SubsystemRoot):
    """/sys/devices/system/node: the node devices and the node state masks.

    Touched whenever a mask changes, so the root files and ``distance`` follow."""

    def __init__(self, kernel: "Kernel", mm: "MemoryHotplug", dram_nodes: dict[int, list[int]],
                 possible: list[int], boot_used_fraction: float = 0.1):
        self._changes = None
        self.kernel = kernel
        self.mm = mm
        mm.nodes = self
        self.kdir: KDir = kernel.system.mkdir("node")
        self.devices: dict[int, Node] = {}
        self._zones: dict[int, NodeZones] = {}
        self.dram = dram_nodes
        self.possible = sorted(set(possible) | set(dram_nodes))
        self.online_nodes: set[int] = set()
        self.has_memory: set[int] = set()
        self.has_normal: set[int] = set()
        self.boot_used_fraction = boot_used_fraction
        self.adistance: dict[int, int] = {nid: DRAM_ADISTANCE for nid in dram_nodes}
        self.tiers: dict[int, MemoryTier] = {}
        self.tiers_dir: KDir = kernel.virtual.mkdir("memory_tiering")
        kernel.register(self, self.kdir)
        kernel.power_attrs(self.kdir.mkdir("power"), None)

    # ==== masks ======================================================================================
    @attr.ro
    def possible(self) -> str:
        return bitmap_list(self.possible) + "\n"

    @attr.ro
    def online(self) -> str:
        return bitmap_list(self.online_nodes) + "\n"

    @attr.ro
    def has_normal_memory(self) -> str:
        return bitmap_list(self.has_normal) + "\n"

    @attr.ro
    def has_memory(self) -> str:
        return bitmap_list(self.has_memory) + "\n"

    @attr.ro
    def has_cpu(self) -> str:
        return bitmap_list(n for n, cpus in self.dram.items() if cpus) + "\n"

    @attr.ro
    def has_generic_initiator(self) -> str:
        return "\n"

    # ==== node lifecycle ===============================================================================
    def nids(self) -> list[int]:
        return sorted(self._zones)

    def zones(self, nid: int) -> NodeZones:
        z = self._zones.get(nid)
        if z is None:
            z = self._zones[nid] = NodeZones(nid)
            z._changes = self.kernel.tree.changes
        return z

    def node_kdir(self, nid: int) -> KDir | None:
        dev = self.devices.get(nid)
        return dev.kdir if dev is not None else None

    def check_possible(self, nid: int) -> None:
        if nid not in self.possible:
            raise KernelError(errno.EINVAL, f"node {nid} is not possible")

    def try_online_node(self, nid: int) -> Node:
        """__register_one_node(): the node directory appears with its first memory."""
        dev = self.devices.get(nid)
        if dev is not None:
            return dev
        self.check_possible(nid)
        dev = Node(self.kernel, self, nid, self.dram.get(nid, []))
        self.devices[nid] = dev
        self.zones(nid)
        self.kernel.device_add(dev)
        self.online_nodes.add(nid)
        self.touch()
        return dev

    def try_offline_node(self, nid: int) -> None:
        """A CPU-less node with no memory left goes away (try_offline_node)."""
        if nid in self.dram and self.dram[nid]:
            return
        if any(b.nid == nid for b in self.mm.blocks.values()):
            return
        dev = self.devices.pop(nid, None)
        if dev is None:
            return
        self.kernel.device_unregister(dev)
        self.online_nodes.discard(nid)
        self.touch()

    def link_block(self, block: "MemoryBlock") -> None:
        node = self.devices[block.nid]
        node.link(block.name, block)

    def unlink_block(self, block: "MemoryBlock") -> None:
        node = self.devices.get(block.nid)
        if node is not None:
            node.unlink(block.name)

    def memory_changed(self, nid: int) -> None:
        """Recompute N_MEMORY / N_NORMAL_MEMORY for the node and its memory tier."""
        zones = self.zones(nid)
        z = zones.zones
        normal = bool(z["DMA"].blocks or z["DMA32"].blocks or z["Normal"].blocks)
        has = normal or bool(z["Movable"].blocks)
        changed = (nid in self.has_memory) != has or (nid in self.has_normal) != normal
        (self.has_memory.add if has else self.has_memory.discard)(nid)
        (self.has_normal.add if normal else self.has_normal.discard)(nid)
        zones.touch()
        if changed:
            self.touch()
            self._update_tier(nid, has)

    # ==== memory tiers ===================================================================================
    def set_adistance(self, nid: int, adistance: int) -> None:
        """kmem / sysram register the memory type of the nodes they populate."""
        self.adistance.setdefault(nid, adistance)

    def _update_tier(self, nid: int, has_memory: bool) -> None:
        for tier in list(self.tiers.values()):
            if nid in tier.nodes and not has_memory:
                tier.nodes.discard(nid)
                tier.touch()
                if not tier.nodes:
                    del self.tiers[tier.tier_id]
                    self.kernel.device_unregister(tier)
        if has_memory:
            tier_id = self.adistance.get(nid, LOWTIER_ADISTANCE) >> 7
            tier = self.tiers.get(tier_id)
            if tier is None:
                tier = self.tiers[tier_id] = MemoryTier(self.kernel, self, tier_id)
                self.kernel.device_add(tier)
            tier.nodes.add(nid)
            tier.touch()

    # ==== accounting =======================================================================================
    def memory_kb(self, nid: int) -> tuple[int, int]:
        """(MemTotal, MemUsed) in kB from the node's online blocks."""
        total = used = 0
        mm = self.mm
        memmap = mm.block_size // 4096 * 64
        for block in mm.blocks.values():
            if block.nid != nid or not block.is_online:
                continue
            managed = mm.managed_bytes(block)
            total += managed
            if block.boot:
                used += int(managed * self.boot_used_fraction)
        # memmap of hot-added memory not carried by the memory itself comes from a DRAM node
        if nid == self.memmap_node():
            foreign = sum(1 for b in mm.blocks.values() if not b.boot and not b.memmap_on_memory)
            used += foreign * memmap
        return total // 1024, min(used, total) // 1024

    def memmap_node(self) -> int:
        return min(self.dram, default=0)

    def distance(self, a: int, b: int) -> int:
        if a == b:
            return 10
        if a in self.dram and b in self.dram:
            return 21
        return 26 if (a in self.dram) != (b in self.dram) else 36
