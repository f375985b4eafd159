"""Memory blocks and the hotplug engine (drivers/base/memory.c, mm/memory_hotplug.c).

``MemoryHotplug`` is the engine the drivers call: ``add_memory`` creates offline blocks
(uevent add each) and then onlines them with the requested or default online type;
``remove_memory`` refuses (EBUSY) while any block is online; onlining picks a zone with
``zone_for_pfn_range`` rules and updates node, zone, tier and meminfo accounting.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..core.attrs import SysfsObject, attr
from ..core.device import Bus, Device, SubsystemRoot
from ..core.errors import KernelError
from ..core.kernfs import KDir
from ..core.parse import WriteBuf, kstrtobool, kstrtoull
from .zones import (KERNEL_ZONES, MMOP_OFFLINE, MMOP_ONLINE, MMOP_ONLINE_KERNEL,
                    MMOP_ONLINE_MOVABLE, ONLINE_TYPE_NAMES, ONLINE_TYPES, parse_online_type)

if TYPE_CHECKING:
    from ..core.kernel import Kernel
    from .node import NodeSubsys

PAGE = 4096
STRUCT_PAGE = 64


class MemoryBus(Bus):
    name = "memory"


@dataclass(eq=False)
class MemoryGroup:
    """A static memory group (MHP_NID_IS_MGID): all ranges of one dax device."""
    nid: int
    blocks: list["MemoryBlock"] = field(default_factory=list)


@dataclass(eq=False)
class IomemResource:
    start: int
    end: int            # inclusive
    name: str
    busy: bool = True

    def overlaps(self, start: int, end: int) -> bool:
        return self.start <= end and start <= self.end


class HotplugPolicy(SysfsObject):
    """Global knobs: auto_online_blocks and the memory_hotplug module parameters."""

    def __init__(self, auto_online: str, memmap_on_memory: bool):
        self._changes = None
        self.default_online_type = ONLINE_TYPES[auto_online]
        self.online_policy = "contig-zones"
        self.auto_movable_ratio = 301
        self.auto_movable_numa_aware = True
        self.memmap_on_memory = memmap_on_memory
        self.movable_node = False


class MemoryBlock(Device):
    """memoryN: one hotplug granule; ``block_id`` = phys addr / block size."""

    bus_name = "memory"
    has_power = True

    def __init__(self, kernel: "Kernel", mm: "MemoryHotplug", block_id: int, nid: int,
                 group: MemoryGroup | None, memmap_on_memory: bool, boot: bool = False):
        super().__init__(kernel, f"memory{block_id}", mm.kdir)
        self.mm = mm
        self.block_id = block_id
        self.nid = nid
        self.group = group
        self.memmap_on_memory = memmap_on_memory
        self.boot = boot
        self.zone: str | None = None          # set while online
        self.going_offline = False
        self.online_type = -1                  # what a state write asked for

    @property
    def is_online(self) -> bool:
        return self.zone is not None

    @property
    def start(self) -> int:
        return self.block_id * self.mm.block_size

    def on_add(self) -> None:
        self.link(f"node{self.nid}", lambda: self.mm.nodes.node_kdir(self.nid))

    @attr.ro
    def phys_index(self) -> str:
        return f"{self.block_id:08x}\n"

    @attr.rw(values=tuple(ONLINE_TYPES))
    def state(self) -> str:
        if self.going_offline:
            return "going-offline\n"
        return "online\n" if self.is_online else "offline\n"

    @state.store
    def state(self, buf: WriteBuf) -> None:
        online_type = parse_online_type(buf)
        if online_type == MMOP_OFFLINE:
            if not self.is_online:
                raise KernelError(errno.EINVAL)     # device_offline() returned 1
            self.mm.offline_block(self)
        else:
            if self.is_online:
                raise KernelError(errno.EINVAL)
            self.mm.online_block(self, online_type)

    @attr.ro
    def phys_device(self) -> str:
        return "0\n"

    @attr.ro
    def removable(self) -> str:
        return "1\n"

    def _zone_inputs(self):
        """An offline block's choices follow its node's zone spans and the policy."""
        if self.is_online:
            return ()
        inputs = (self.mm.nodes.zones(self.nid), self.mm.policy)
        return inputs + (self.mm.nodes,) if self.mm.policy.online_policy == "auto-movable" else inputs

    @attr.ro(depends=_zone_inputs)
    def valid_zones(self) -> str:
        return self.mm.valid_zones(self) + "\n"

    @attr.rw
    def online(self) -> str:
        return "1\n" if self.is_online else "0\n"

    @online.store
    def online(self, buf: WriteBuf) -> None:
        want = kstrtobool(buf)
        if want == self.is_online:
            return
        if want:
            self.mm.online_block(self, MMOP_ONLINE)
        else:
            self.mm.offline_block(self)


class MemoryRoot(SubsystemRoot):
    """/sys/devices/system/memory itself."""

    def __init__(self, mm: "MemoryHotplug"):
        self._changes = None
        self.mm = mm

    @attr.ro
    def block_size_bytes(self) -> str:
        return f"{self.mm.block_size:x}\n"

    @attr.rw(depends=lambda self: (self.mm.policy,), values=tuple(ONLINE_TYPES))
    def auto_online_blocks(self) -> str:
        return ONLINE_TYPE_NAMES[self.mm.policy.default_online_type] + "\n"

    @auto_online_blocks.store
    def auto_online_blocks(self, buf: WriteBuf) -> None:
        self.mm.policy.default_online_type = parse_online_type(buf)

    def _offline_page(self, buf: WriteBuf, kind: str) -> None:
        addr = kstrtoull(buf, 0)
        block = self.mm.blocks.get(addr // self.mm.block_size)
        if block is None or not block.is_online:
            raise KernelError(errno.ENXIO)
        self.mm.kernel.log.emit("info", f"Memory failure: {addr // PAGE:#x}: {kind} offline page")

    @attr.wo
    def soft_offline_page(self, buf: WriteBuf) -> None:
        self._offline_page(buf, "soft")

    @attr.wo
    def hard_offline_page(self, buf: WriteBuf) -> None:
        self._offline_page(buf, "hard")


class MemoryHotplug:
    """The engine.  ``faults`` lets users make offlining fail (EBUSY) on chosen blocks."""

    def __init__(self, kernel: "Kernel", block_size: int, auto_online: str, memmap_on_memory: bool):
        self.kernel = kernel
        self.block_size = block_size
        self.policy = HotplugPolicy(auto_online, memmap_on_memory)
        self.blocks: dict[int, MemoryBlock] = {}
        self.iomem: list[IomemResource] = []          # top-level reservations (request_region)
        self.system_ram: list[IomemResource] = []     # "System RAM" resources, boot and hot-added
        self.nodes: NodeSubsys = None      # set by the node subsystem
        self.offline_faults: dict[int | None, list] = {}    # block id (None: any) -> [errno, count]
        self.kdir: KDir = kernel.system.mkdir("memory")
        self.root = MemoryRoot(self)
        kernel.register(self.root, self.kdir)
        self.policy._changes = kernel.tree.changes
        kernel.power_attrs(self.kdir.mkdir("power"), None)

    # ==== resources (/proc/iomem) ==================================================================
    def request_region(self, start: int, size: int, name: str) -> IomemResource:
        end = start + size - 1
        for r in self.iomem + [r for r in self.system_ram if r.name == "System RAM"]:
            if r.overlaps(start, end):
                raise KernelError(errno.EBUSY, f"{name}: conflict with {r.name} [{r.start:#x}-{r.end:#x}]")
        res = IomemResource(start, end, name)
        self.iomem.append(res)
        return res

    def release_region(self, res: IomemResource) -> None:
        if res in self.iomem:
            self.iomem.remove(res)

    def busy_system_ram(self, start: int, size: int) -> bool:
        end = start + size - 1
        return any(r.overlaps(start, end) for r in self.system_ram)

    # ==== hot-add / hot-remove ======================================================================
    def add_boot_memory(self, nid: int, start: int, size: int) -> None:
        zones = self.nodes.zones(nid)
        self.system_ram.append(IomemResource(start, start + size - 1, "System RAM"))
        for block_id in range(start // self.block_size, (start + size) // self.block_size):
            block = MemoryBlock(self.kernel, self, block_id, nid, None, False, boot=True)
            self.blocks[block_id] = block
            self.kernel.device_add(block)
            self.nodes.link_block(block)
            addr = block.start
            if addr < 16 << 20:          # holds ZONE_DMA and the start of DMA32: spans zones
                block.zone, spans = "none", ("DMA", "DMA32")
            elif addr < 4 << 30:
                block.zone, spans = "DMA32", ("DMA32",)
            else:
                block.zone, spans = "Normal", ("Normal",)
            for z in spans:
                zones.zones[z].add(block_id)
            zones.boot_kernel_pages += self.block_size // PAGE
        self.nodes.memory_changed(nid)

    def add_memory(self, nid: int, start: int, size: int, *, resource_name: str,
                   group: MemoryGroup | None = None, online_type: int | None = None,
                   memmap_on_memory: bool = False) -> list[MemoryBlock]:
        """add_memory_driver_managed(): blocks appear offline, then get onlined (or not)."""
        if start % self.block_size or size % self.block_size or size == 0:
            raise KernelError(errno.EINVAL, "hotplug range not block aligned")
        first, count = start // self.block_size, size // self.block_size
        if any(first + i in self.blocks for i in range(count)):
            raise KernelError(errno.EEXIST, f"memory range [{start:#x}-{start + size - 1:#x}] already added")
        if online_type is None:
            online_type = self.policy.default_online_type
        self.nodes.check_possible(nid)
        self.system_ram.append(IomemResource(start, start + size - 1, resource_name))
        memmap = memmap_on_memory and self.policy.memmap_on_memory
        blocks = []
        for i in range(count):
            block = MemoryBlock(self.kernel, self, first + i, nid, group, memmap)
            self.blocks[block.block_id] = block
            self.kernel.device_add(block)
            blocks.append(block)
            if group is not None:
                group.blocks.append(block)
        # add_memory_resource(): the blocks exist first, then a new node is registered,
        # then the blocks are linked under it
        self.nodes.try_online_node(nid)
        for block in blocks:
            self.nodes.link_block(block)
        self.nodes.memory_changed(nid)
        self.nodes.zones(self.nodes.memmap_node()).touch()
        self.kernel.log.emit("debug", f"hotplug: added [mem {start:#018x}-{start + size - 1:#018x}] "
                             f"to node {nid} ({resource_name})")
        if online_type != MMOP_OFFLINE:
            # online_memory_block() for each block once all exist; failures leave it offline
            for block in blocks:
                try:
                    self.online_block(block, online_type)
                except KernelError:
                    pass
        return blocks

    def remove_memory(self, start: int, size: int) -> None:
        """remove_memory(): every block must be offline, else EBUSY and nothing happens."""
        ids = range(start // self.block_size, (start + size) // self.block_size)
        blocks = [self.blocks[i] for i in ids if i in self.blocks]
        if any(b.is_online for b in blocks):
            raise KernelError(errno.EBUSY)
        nids = {b.nid for b in blocks}
        for block in blocks:
            self.nodes.unlink_block(block)
            if block.group is not None and block in block.group.blocks:
                block.group.blocks.remove(block)
            del self.blocks[block.block_id]
            self.kernel.device_unregister(block)
        end = start + size - 1
        self.system_ram = [r for r in self.system_ram if not (r.start >= start and r.end <= end)]
        self.nodes.zones(self.nodes.memmap_node()).touch()
        for nid in nids:
            self.nodes.memory_changed(nid)
            self.nodes.try_offline_node(nid)

    def offline_and_remove_memory(self, start: int, size: int) -> None:
        """Offline everything, then remove; on failure the offlined blocks are onlined again."""
        ids = range(start // self.block_size, (start + size) // self.block_size)
        done: list[tuple[MemoryBlock, str]] = []
        try:
            for i in ids:
                block = self.blocks.get(i)
                if block is not None and block.is_online:
                    zone = block.zone
                    self.offline_block(block)
                    done.append((block, zone))
        except KernelError:
            for block, zone in reversed(done):
                self.online_block(block, MMOP_ONLINE_MOVABLE if zone == "Movable" else MMOP_ONLINE_KERNEL)
            raise
        self.remove_memory(start, size)

    # ==== online / offline ==========================================================================
    def choose_zone(self, block: MemoryBlock, online_type: int) -> str:
        zones = self.nodes.zones(block.nid)
        if online_type == MMOP_ONLINE_MOVABLE:
            return "Movable"
        if online_type == MMOP_ONLINE_KERNEL:
            return zones.default_kernel_zone(block.block_id)
        if self.policy.online_policy == "auto-movable":
            return self._auto_movable_zone(block)
        return zones.default_zone(block.block_id, self.policy.movable_node)

    def _auto_movable_zone(self, block: MemoryBlock) -> str:
        """auto_movable_zone_for_pfn(): Movable while MOVABLE stays under the ratio of boot
        kernel memory, system-wide and (numa aware) on the node; a group never splits."""
        zones = self.nodes.zones(block.nid)
        kernel_zone = zones.default_kernel_zone(block.block_id)
        group = block.group
        if group is not None:
            if any(b.is_online and b.zone in KERNEL_ZONES for b in group.blocks):
                return kernel_zone
            group_pages = len(group.blocks) * self.block_size // PAGE
        else:
            group_pages = self.block_size // PAGE
        ratio = self.policy.auto_movable_ratio
        movable = sum(self.nodes.zones(n).pages("Movable") for n in self.nodes.nids()) * \
            (self.block_size // PAGE)
        kernel = sum(self.nodes.zones(n).boot_kernel_pages for n in self.nodes.nids())
        if (movable + group_pages) * 100 > kernel * ratio:
            return kernel_zone
        if self.policy.auto_movable_numa_aware:
            node_movable = zones.pages("Movable") * (self.block_size // PAGE)
            if (node_movable + group_pages) * 100 > zones.boot_kernel_pages * ratio:
                return kernel_zone
        return "Movable"

    def online_block(self, block: MemoryBlock, online_type: int) -> None:
        if block.is_online:
            raise KernelError(errno.EINVAL)
        zone = self.choose_zone(block, online_type)
        block.online_type = online_type
        block.zone = zone
        self.nodes.zones(block.nid).zones[zone].add(block.block_id)
        self.nodes.zones(block.nid).touch()
        self.nodes.memory_changed(block.nid)
        self.kernel.uevent(block, "online")

    def offline_block(self, block: MemoryBlock) -> None:
        if not block.is_online:
            raise KernelError(errno.EINVAL)
        start, end = block.start, block.start + self.block_size - 1
        if block.zone == "none":
            raise KernelError(errno.EINVAL, "block spans zones")
        err = self._offline_fault(block)
        if err is None and block.boot and block.zone in KERNEL_ZONES:
            err = errno.EBUSY          # boot-time kernel memory holds unmovable pages
        if err is not None:
            reason = {errno.EBUSY: "unmovable page", errno.EINTR: "signal backoff"}.get(err, "failure")
            self.kernel.log.emit("info", f"memory offlining [mem {start:#010x}-{end:#010x}] failed due to {reason}")
            raise KernelError(err)
        zones = self.nodes.zones(block.nid)
        zones.zones[block.zone].discard(block.block_id)
        zones.touch()
        block.zone = None
        self.nodes.memory_changed(block.nid)
        self.kernel.uevent(block, "offline")

    def _offline_fault(self, block: MemoryBlock) -> int | None:
        for key in (block.block_id, None):
            fault = self.offline_faults.get(key)
            if fault is None:
                continue
            err, count = fault
            if count == 0:
                continue
            if count > 0:
                fault[1] = count - 1
            return err
        return None

    # ==== views =====================================================================================
    def valid_zones(self, block: MemoryBlock) -> str:
        if block.is_online:
            return block.zone
        zones = self.nodes.zones(block.nid)
        default = self.choose_zone(block, MMOP_ONLINE)
        names = [default]
        kernel = zones.default_kernel_zone(block.block_id)
        if kernel != default:
            names.append(kernel)
        if default != "Movable":
            names.append("Movable")
        return " ".join(names)

    def managed_bytes(self, block: MemoryBlock) -> int:
        """What onlining the block adds to MemTotal: its memmap lives inside it if memmap_on_memory."""
        memmap = self.block_size // PAGE * STRUCT_PAGE
        return self.block_size - (memmap if block.memmap_on_memory else 0)


def register_module_params(kernel: "Kernel", policy: HotplugPolicy) -> None:
    """/sys/module/memory_hotplug/parameters: online_policy and the auto-movable knobs."""
    from ..core.kernel import ModuleParam

    def set_policy(buf: WriteBuf) -> None:
        value = buf.rstrip("\n")
        if value not in ("contig-zones", "auto-movable"):
            raise KernelError(errno.EINVAL)
        policy.online_policy = value

    def set_ratio(buf: WriteBuf) -> None:
        from ..core.parse import kstrtouint
        policy.auto_movable_ratio = kstrtouint(buf, 0)

    def set_numa_aware(buf: WriteBuf) -> None:
        policy.auto_movable_numa_aware = kstrtobool(buf)

    kernel.module("memory_hotplug", {
        "memmap_on_memory": ModuleParam(policy, "memmap_on_memory", 0o444,
                                        lambda: "Y\n" if policy.memmap_on_memory else "N\n"),
        "online_policy": ModuleParam(policy, "online_policy", 0o644, lambda: f"{policy.online_policy}\n",
                                     set_policy, values=("contig-zones", "auto-movable")),
        "auto_movable_ratio": ModuleParam(policy, "auto_movable_ratio", 0o644,
                                          lambda: f"{policy.auto_movable_ratio}\n", set_ratio),
        "auto_movable_numa_aware": ModuleParam(policy, "auto_movable_numa_aware", 0o644,
                                               lambda: "Y\n" if policy.auto_movable_numa_aware else "N\n",
                                               set_numa_aware),
    })
