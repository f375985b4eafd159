"""Zones of a NUMA node and the zone choice when a block is onlined (mm/memory_hotplug.c).

A zone's span covers the memory onlined into it; ``zone_for_online`` is
``zone_for_pfn_range()``: online_movable -> Movable, online_kernel -> the kernel zone
whose span intersects the block (else Normal), plain online -> per online_policy.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import errno

from ..core.attrs import SysfsObject
from ..core.errors import KernelError
from ..core.parse import sysfs_streq

KERNEL_ZONES = ("DMA", "DMA32", "Normal")
ZONES = KERNEL_ZONES + ("Movable",)

MMOP_OFFLINE, MMOP_ONLINE, MMOP_ONLINE_KERNEL, MMOP_ONLINE_MOVABLE = range(4)
ONLINE_TYPES = {"offline": MMOP_OFFLINE, "online": MMOP_ONLINE, "online_kernel": MMOP_ONLINE_KERNEL,
                "online_movable": MMOP_ONLINE_MOVABLE}
ONLINE_TYPE_NAMES = {v: k for k, v in ONLINE_TYPES.items()}


def parse_online_type(buf: str, table: dict[str, int] = ONLINE_TYPES) -> int:
    """mhp_online_type_from_str(): one of the table's names (sysfs_streq), else EINVAL."""
    for name, value in table.items():
        if sysfs_streq(buf, name):
            return value
    raise KernelError(errno.EINVAL)


@dataclass
class Zone:
    name: str
    blocks: set[int] = field(default_factory=set)       # online block ids in this zone
    boot_span: tuple[int, int] | None = None              # [start, end) block ids present at boot
    _span: tuple[int, int] | None = None
    _stale: bool = True

    def add(self, block_id: int) -> None:
        self.blocks.add(block_id)
        if self._span is not None and not self._stale:
            s, e = self._span
            self._span = (min(s, block_id), max(e, block_id + 1))
        else:
            self._stale = True

    def discard(self, block_id: int) -> None:
        self.blocks.discard(block_id)
        self._stale = True

    def span(self) -> tuple[int, int] | None:
        """zone_start_pfn .. zone_end_pfn in block units; None for an empty zone."""
        if self._stale:
            if self.blocks:
                self._span = (min(self.blocks), max(self.blocks) + 1)
            else:
                self._span = None
            self._stale = False
        return self._span

    def intersects(self, block_id: int) -> bool:
        span = self.span()
        return span is not None and span[0] <= block_id < span[1]


class NodeZones(SysfsObject):
    """Zones of one node plus the figures meminfo and the auto-movable policy need.
    Also the dependency token of every offline block's valid_zones on this node."""

    def __init__(self, nid: int):
        self._changes = None
        self.nid = nid
        self.zones = {name: Zone(name) for name in ZONES}
        self.boot_kernel_pages = 0     # kernel-zone memory present at boot (auto-movable ratio)

    def zone_of_online(self, block_id: int) -> str | None:
        for z in self.zones.values():
            if block_id in z.blocks:
                return z.name
        return None

    def default_kernel_zone(self, block_id: int) -> str:
        for name in KERNEL_ZONES:
            if self.zones[name].intersects(block_id):
                return name
        return "Normal"

    def default_zone(self, block_id: int, movable_node: bool) -> str:
        """contig-zones: stay in whichever zone the block touches; a fresh range goes Normal."""
        kernel = self.default_kernel_zone(block_id)
        in_kernel = self.zones[kernel].intersects(block_id)
        in_movable = self.zones["Movable"].intersects(block_id)
        if in_kernel != in_movable:
            return kernel if in_kernel else "Movable"
        return "Movable" if movable_node else kernel

    def pages(self, zone: str) -> int:
        return len(self.zones[zone].blocks)
