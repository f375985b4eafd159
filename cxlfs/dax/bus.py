"""The dax bus (drivers/dax/bus.c): dax regions, dev_dax devices, the device_dax/kmem drivers.

A dax region is not a device of its own: its files are the ``dax_region/`` group of the
device that created it (for CXL the ``dax_regionN`` device on the cxl bus).
"""
from __future__ import annotations

import errno
import re
from typing import TYPE_CHECKING, ClassVar

from ..core.attrs import Attribute, SysfsObject, attr
from ..core.chardev import CharDevice
from ..core.device import Bus, Device, Driver
from ..core.errors import KernelError
from ..core.ida import IDA
from ..core.parse import WriteBuf, hex_prefixed, kstrtobool, kstrtoull, sysfs_streq

if TYPE_CHECKING:
    from ..core.kernel import Kernel

SZ_2M = 2 << 20
SZ_1G = 1 << 30
PAGE = 4096
ALIGNS = (PAGE, SZ_2M, SZ_1G)
DAX_NAME = re.compile(r"^dax(\d+)\.(\d+)$")


class DaxBus(Bus):
    name = "dax"

    def __init__(self, kernel):
        super().__init__(kernel)
        self.minors = IDA()

    def device_uevent(self, dev: Device) -> list[tuple[str, str]]:
        return [("MODALIAS", "dax:t0")]

    def match(self, dev: Device, drv: Driver) -> bool:
        if not isinstance(dev, DevDax) or not isinstance(drv, DaxDriver):
            return False
        if dev.name in drv.ids:
            return True
        wanted = "kmem" if dev.region.kmem else "device_dax"
        return drv.type == wanted

    def probe(self, dev: "DevDax", drv: Driver) -> None:
        """dax_bus_probe(): a zero-size device has nothing to drive."""
        if dev.nbytes == 0 or dev.region.id < 0:
            raise KernelError(errno.ENXIO)
        drv.probe(dev)


class DaxRegion(SysfsObject):
    """struct dax_region: the address range devices are carved from."""

    def __init__(self, kernel: "Kernel", region_id: int, start: int, size: int, *, align: int,
                 target_node: int, kmem: bool, owner: Device, dynamic: bool = True):
        self._changes = kernel.tree.changes
        self.kernel = kernel
        self.id = region_id
        self.start = start
        self.size = size
        self.align = align
        self.target_node = target_node
        self.kmem = kmem
        self.owner = owner              # the device whose dax_region/ group shows this
        self.dynamic = dynamic
        self.devices: list[DevDax] = []
        self.ida = IDA()
        self.seed: DevDax | None = None
        self.youngest: DevDax | None = None

    @property
    def enabled(self) -> bool:
        return self.owner.driver is not None and not self.owner.dead

    def allocated(self) -> list[tuple[int, int]]:
        return sorted(r for d in self.devices for r in d.ranges)

    def available(self) -> int:
        return self.size - sum(size for _, size in self.allocated())

    def free_extents(self) -> list[tuple[int, int]]:
        out, cursor = [], self.start
        for s, size in self.allocated():
            if s > cursor:
                out.append((cursor, s - cursor))
            cursor = max(cursor, s + size)
        if cursor < self.start + self.size:
            out.append((cursor, self.start + self.size - cursor))
        return out

    def create_device(self, size: int = 0, *, memmap_on_memory: bool = False) -> "DevDax":
        dev = DevDax(self.kernel, self, self.ida.alloc(), memmap_on_memory=memmap_on_memory)
        if "dax_online_type_at_creation" in self.kernel.features:
            # [PATCH 3/9] creators record the system default when they create the device
            dev.online_type = self.kernel.mm.policy.default_online_type
        if size:
            dev.ranges = [(self.start, size)]
        self.devices.append(dev)
        self.touch()
        return dev

    def forget(self, dev: "DevDax") -> None:
        if dev in self.devices:
            self.devices.remove(dev)
        self.ida.free(dev.instance)
        if self.seed is dev:
            self.seed = None
        if self.youngest is dev:
            self.youngest = None
        self.touch()


def dax_region_group(visible) -> list[Attribute]:
    """The dax_region/ attribute group, shown on ``owner`` devices whose ``dax_region`` is set."""
    def region(dev) -> DaxRegion:
        return dev.dax_region

    def deps(dev):
        return (dev.dax_region,) if dev.dax_region is not None else ()

    def dyn(dev):
        return visible(dev) and dev.dax_region is not None and dev.dax_region.dynamic

    def create_store(dev, buf: WriteBuf) -> None:
        r = region(dev)
        from ..core.parse import kstrtoint
        val = kstrtoint(buf, 0)
        if val != 1:
            raise KernelError(errno.EINVAL)
        if r.available() == 0:
            raise KernelError(errno.ENOSPC)
        new = r.create_device()
        dev.kernel.device_add(new)
        if r.seed is None:
            r.seed = new
        r.youngest = new

    def delete_store(dev, buf: WriteBuf) -> None:
        r = region(dev)
        victim = next((d for d in r.devices if sysfs_streq(buf, d.name)), None)
        if victim is None:
            raise KernelError(errno.ENXIO)
        if victim.driver is not None or victim.nbytes or victim.instance == 0:
            raise KernelError(errno.EBUSY)
        dev.kernel.device_unregister(victim)

    g = "dax_region"
    return [
        Attribute("id", 0o444, show=lambda d: f"{region(d).id}\n", group=g, depends=deps,
                  visible=lambda d: 0o444 if visible(d) else 0),
        Attribute("size", 0o444, show=lambda d: f"{region(d).size}\n", group=g, depends=deps,
                  visible=lambda d: 0o444 if visible(d) else 0),
        Attribute("align", 0o400, show=lambda d: f"{region(d).align}\n", group=g, depends=deps,
                  visible=lambda d: 0o400 if visible(d) else 0),
        Attribute("available_size", 0o444, show=lambda d: f"{region(d).available()}\n", group=g,
                  depends=deps, visible=lambda d: 0o444 if dyn(d) else 0),
        Attribute("seed", 0o444, show=lambda d: f"{region(d).seed.name if region(d).seed else ''}\n",
                  group=g, depends=deps, visible=lambda d: 0o444 if dyn(d) else 0),
        Attribute("create", 0o644,
                  show=lambda d: f"{region(d).youngest.name if region(d).youngest else ''}\n",
                  store=create_store, group=g, depends=deps, visible=lambda d: 0o644 if dyn(d) else 0),
        Attribute("delete", 0o200, store=delete_store, group=g,
                  visible=lambda d: 0o200 if dyn(d) else 0),
    ]


class Mapping(Device):
    """mappingN below daxX.Y: one physical range (no bus, no class: empty uevent)."""

    def __init__(self, kernel, dev_dax: "DevDax", index: int, start: int, size: int, pgoff: int):
        super().__init__(kernel, f"mapping{index}", dev_dax)
        self.start = start
        self.size = size
        self.pgoff = pgoff

    @attr.admin_ro
    def start(self) -> str:
        return f"{hex_prefixed(self.start)}\n"

    @attr.admin_ro
    def end(self) -> str:
        return f"{hex_prefixed(self.start + self.size - 1)}\n"

    @attr.admin_ro
    def page_offset(self) -> str:
        return f"{hex_prefixed(self.pgoff)}\n"


class DevDax(CharDevice):
    """daxX.Y: a dev_dax with one or more ranges of its region."""

    bus_name = "dax"
    has_power = True

    def __init__(self, kernel, region: DaxRegion, instance: int, *, memmap_on_memory: bool = False):
        super().__init__(kernel, f"dax{region.id}.{instance}", region.owner)
        self.region = region
        self.instance = instance
        self.ranges: list[tuple[int, int]] = []
        self.align = region.align
        self.memmap_on_memory = memmap_on_memory
        self.target_node = region.target_node
        self.online_type = None     # proposals: what kmem should online with (None: system default)
        self.kmem = None            # kmem's per-device data while bound
        self.mappings: list[Mapping] = []
        bus = kernel.buses["dax"]
        self.devt = (kernel.majors.dax, bus.minors.alloc())

    @property
    def nbytes(self) -> int:
        return sum(s for _, s in self.ranges)

    def on_add(self) -> None:
        self.sync_mappings()

    def on_remove(self) -> None:
        self.kernel.buses["dax"].minors.free(self.devt[1])
        self.region.forget(self)

    def sync_mappings(self) -> None:
        """One mappingN device per range, renumbered as ranges come and go."""
        for m in self.mappings:
            self.kernel.device_unregister(m)
        self.mappings = []
        pgoff = 0
        for i, (start, size) in enumerate(self.ranges):
            m = Mapping(self.kernel, self, i, start, size, pgoff)
            self.kernel.device_add(m)
            self.mappings.append(m)
            pgoff += size // PAGE

    @attr.ro
    def modalias(self) -> str:
        return "dax:t0\n"

    @attr.rw(visible=lambda self: 0o644 if self.region.dynamic else 0o444)
    def size(self) -> str:
        return f"{self.nbytes}\n"

    @size.store
    def size(self, buf: WriteBuf) -> None:
        val = kstrtoull(buf, 0)
        if val % max(self.align, SZ_2M):
            raise self.dbg(f"size {val:#x} not aligned to {max(self.align, SZ_2M):#x}", errno.EINVAL)
        region = self.region
        if not region.enabled:
            raise KernelError(errno.ENXIO)
        if self.driver is not None:
            raise KernelError(errno.EBUSY)
        cur = self.nbytes
        if val == cur:
            return
        if val > cur:
            self._grow(val - cur)
        else:
            self._shrink(cur - val)
        self.sync_mappings()
        if region.seed is self and val:
            region.seed = None
        region.touch()

    def _grow(self, need: int) -> None:
        region = self.region
        if need > region.available():
            raise KernelError(errno.ENOSPC)
        free = region.free_extents()
        if self.ranges:
            last_s, last_n = self.ranges[-1]
            adj = next(((s, n) for s, n in free if s == last_s + last_n), None)
            if adj is not None:
                take = min(adj[1], need)
                self.ranges[-1] = (last_s, last_n + take)
                need -= take
                free = region.free_extents()
        for s, n in free:
            if need == 0:
                break
            take = min(n, need)
            self.ranges.append((s, take))
            need -= take

    def _shrink(self, drop: int) -> None:
        while drop and self.ranges:
            s, n = self.ranges[-1]
            if n <= drop:
                self.ranges.pop()
                drop -= n
            else:
                self.ranges[-1] = (s, n - drop)
                drop = 0

    @attr.rw(visible=lambda self: 0o644 if self.region.dynamic else 0o444)
    def align(self) -> str:
        return f"{self.align}\n"

    @align.store
    def align(self, buf: WriteBuf) -> None:
        try:
            val = kstrtoull(buf, 0)
        except KernelError:
            raise KernelError(errno.ENXIO) from None
        if val not in ALIGNS:
            raise KernelError(errno.EINVAL)
        if not self.region.enabled:
            raise KernelError(errno.ENXIO)
        if self.driver is not None:
            raise KernelError(errno.EBUSY)
        if any(s % val or n % val for s, n in self.ranges):
            raise KernelError(errno.EINVAL)
        self.align = val

    @attr.wo(visible=lambda self: 0o200 if self.region.dynamic else 0)
    def mapping(self, buf: WriteBuf) -> int | None:
        if not self.region.enabled:
            return 0
        m = re.match(r"^\s*(?:0x)?([0-9a-fA-F]+)-(?:0x)?([0-9a-fA-F]+)\s*$", buf)
        if not m:
            raise KernelError(errno.EINVAL)
        start, end = int(m.group(1), 16), int(m.group(2), 16)
        size = end - start + 1
        if size <= 0:
            raise KernelError(errno.EINVAL)
        if size % max(self.align, SZ_2M):
            return None                 # misaligned length: silently ignored
        if not any(s <= start and start + size <= s + n for s, n in self.region.free_extents()):
            raise KernelError(errno.ENOMEM)
        if self.ranges and self.ranges[-1][0] + self.ranges[-1][1] == start:
            self.ranges[-1] = (self.ranges[-1][0], self.ranges[-1][1] + size)
        else:
            self.ranges.append((start, size))
        self.sync_mappings()
        self.region.touch()
        return None

    @attr.ro(visible=lambda self: 0o444 if self.target_node >= 0 else 0)
    def target_node(self) -> str:
        return f"{self.target_node}\n"

    @attr.ro
    def numa_node(self) -> str:
        return f"{self.kernel.mm.nodes.memmap_node() if self.target_node >= 0 else -1}\n"

    @attr.admin_ro
    def resource(self) -> str:
        return f"{hex_prefixed(self.ranges[0][0] if self.ranges else self.region.start)}\n"

    @attr.rw
    def memmap_on_memory(self) -> str:
        return f"{int(self.memmap_on_memory)}\n"

    @memmap_on_memory.store
    def memmap_on_memory(self, buf: WriteBuf) -> None:
        val = kstrtobool(buf)
        if val == self.memmap_on_memory:
            return
        if val and not self.kernel.mm.policy.memmap_on_memory:
            raise KernelError(errno.EOPNOTSUPP)
        if self.driver is not None and self.driver.type == "kmem":
            raise KernelError(errno.EBUSY)
        self.memmap_on_memory = val


def parse_dax_name(buf: str) -> str:
    """new_id/remove_id: exactly daxN.M (the kernel re-prints it and compares)."""
    name = buf[:-1] if buf.endswith("\n") else buf
    m = DAX_NAME.match(name)
    if not m or f"dax{int(m.group(1))}.{int(m.group(2))}" != name:
        raise KernelError(errno.EINVAL)
    return name


class DaxDriver(Driver):
    bus_name = "dax"
    type: ClassVar[str] = "device_dax"

    def __init__(self, kernel):
        super().__init__(kernel)
        self.ids: list[str] = []

    @attr.wo
    def new_id(self, buf: WriteBuf) -> None:
        name = parse_dax_name(buf)
        if name not in self.ids:
            self.ids.append(name)
        self.kernel.driver_attach(self)

    @attr.wo
    def remove_id(self, buf: WriteBuf) -> None:
        name = parse_dax_name(buf)
        if name in self.ids:
            self.ids.remove(name)


class DeviceDaxDriver(DaxDriver):
    """device_dax: the /dev/daxX.Y character device."""

    name = "device_dax"
    module = "device_dax"
    type = "device_dax"
