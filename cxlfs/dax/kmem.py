"""kmem (drivers/dax/kmem.c): a dev_dax becomes System RAM on its target node."""
from __future__ import annotations

import errno
from dataclasses import dataclass, field

from ..core.errors import KernelError
from ..mm.memory import IomemResource, MemoryGroup
from ..mm.node import LOWTIER_ADISTANCE
from .bus import DaxDriver, DevDax


@dataclass(eq=False)
class KmemData:
    group: MemoryGroup
    added: list[tuple[int, int, IomemResource]] = field(default_factory=list)
    online_type: int = 0


class KmemDriver(DaxDriver):
    name = "kmem"
    module = "kmem"
    type = "kmem"

    def resolve_online_type(self, dev: DevDax) -> int:
        """The device's own online type if a creator set one (proposals), else the system
        default (auto_online_blocks) sampled now, at probe time, as mainline does."""
        if dev.online_type is not None:
            return dev.online_type
        return self.kernel.mm.policy.default_online_type

    def probe(self, dev: DevDax) -> None:
        kernel = self.kernel
        mm = kernel.mm
        nid = dev.target_node
        if nid < 0:
            raise dev.err(f"rejecting DAX region with invalid node: {nid}", errno.EINVAL)
        bs = mm.block_size
        ranges = []
        for start, size in dev.ranges:
            s = (start + bs - 1) // bs * bs
            e = (start + size) // bs * bs
            if e > s:
                ranges.append((s, e - s))
                if (s, e - s) != (start, size):
                    dev.log("warn", f"DAX region truncated by {start + size - (e - s) - start:#x} "
                                    f"bytes by memory block alignment")
        if not ranges:
            raise dev.err("rejecting DAX region without any memory after alignment", errno.EINVAL)
        mm.nodes.set_adistance(nid, LOWTIER_ADISTANCE)
        data = KmemData(MemoryGroup(nid), online_type=self.resolve_online_type(dev))
        for i, (start, size) in enumerate(ranges):
            try:
                res = mm.request_region(start, size, dev.name)
            except KernelError:
                dev.log("warn", f"mapping{i}: {start:#x}-{start + size - 1:#x} could not reserve region")
                if i == 0:
                    self._undo(dev, data)
                    raise KernelError(errno.EBUSY) from None
                continue
            try:
                mm.add_memory(nid, start, size, resource_name="System RAM (kmem)", group=data.group,
                              online_type=data.online_type, memmap_on_memory=dev.memmap_on_memory)
            except KernelError:
                mm.release_region(res)
                dev.log("err", f"mapping{i}: {start:#x}-{start + size - 1:#x} memory add failed")
                if i == 0:
                    self._undo(dev, data)
                    raise
                continue
            data.added.append((start, size, res))
        dev.kmem = data

    def _undo(self, dev: DevDax, data: KmemData) -> None:
        for start, size, res in data.added:
            try:
                self.kernel.mm.remove_memory(start, size)
            except KernelError:
                pass
            self.kernel.mm.release_region(res)

    def remove(self, dev: DevDax) -> None:
        """Offline memory goes; online memory cannot be removed and stays until reboot."""
        data: KmemData | None = getattr(dev, "kmem", None)
        if data is None:
            return
        for i, (start, size, res) in enumerate(data.added):
            try:
                self.kernel.mm.remove_memory(start, size)
            except KernelError:
                dev.log("err", f"mapping{i}: {start:#x}-{start + size - 1:#x} cannot be hotremoved "
                               f"until the next reboot")
                continue
            self.kernel.mm.release_region(res)
        dev.kmem = None
