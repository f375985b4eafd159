"""The Kernel: one sysfs instance and its driver core.  Sans-I/O: no FUSE, no threads.

The FUSE adapter (or a test) drives it with four verbs -- ``read``, ``write``,
``readlink`` and the tree lookups -- and drains two outboxes: ``uevents`` (what the
kernel would broadcast) and ``tree.changes`` (what it would have to invalidate).
"""
from __future__ import annotations

import errno
import traceback
from collections import deque
from typing import Iterable

from .attrs import Attribute, SysfsObject, attr
from .device import Bus, Device, Driver, probe_errno
from .errors import KernelError
from .kernfs import KAttr, KDir, KLink, KNode, Tree
from .log import KernelLog
from .parse import PAGE_SIZE, WriteBuf
from .uevent import Uevent


class Module(SysfsObject):
    """/sys/module/<name>: libkmod reads initstate and loads nothing when it says live."""

    def __init__(self, name: str, params: dict[str, "ModuleParam"] | None = None):
        self._changes = None
        self.name = name
        self.params = params or {}

    @attr.ro
    def initstate(self) -> str:
        return "live\n"

    @attr.ro
    def refcnt(self) -> str:
        return "0\n"


class ModuleParam(SysfsObject):
    """One /sys/module/<mod>/parameters/<name> file, backed by get/set callables."""

    def __init__(self, owner: SysfsObject, name: str, mode: int, get, set=None, values=()):
        self._changes = None
        self.owner = owner
        a = Attribute(name, mode, show=lambda _self: get(), values=tuple(values),
                      store=(lambda _self, buf: set(buf)) if set else None)
        self.attribute = a

    def attributes(self):
        return [self.attribute]


class PowerState(SysfsObject):
    """The runtime-PM files every device with power/ shows (all devices here are 'unsupported')."""

    @attr.rw
    def control(self) -> str:
        return "auto\n"

    @control.store
    def control(self, buf: WriteBuf) -> None:
        if buf.rstrip("\n") not in ("auto", "on"):
            raise KernelError(errno.EINVAL)

    @attr.ro
    def runtime_status(self) -> str:
        return "unsupported\n"

    @attr.ro
    def runtime_active_time(self) -> str:
        return "0\n"

    @attr.ro
    def runtime_suspended_time(self) -> str:
        return "0\n"

    @attr.ro
    def runtime_enabled(self) -> str:
        return "disabled\n"

    @attr.ro
    def runtime_usage(self) -> str:
        return "0\n"

    @attr.ro
    def runtime_active_kids(self) -> str:
        return "0\n"

    @attr.ro(name="async")
    def async_(self) -> str:
        return "disabled\n"

    @attr.rw
    def autosuspend_delay_ms(self) -> str:
        raise KernelError(errno.EIO)

    @autosuspend_delay_ms.store
    def autosuspend_delay_ms(self, buf: WriteBuf) -> None:
        raise KernelError(errno.EIO)


POWER_STATE = PowerState()


class Kernel:
    """Buses, devices, drivers, modules, the kernel log and the uevent outbox."""

    def __init__(self) -> None:
        self.tree = Tree()
        self.root = self.tree.root
        self.log = KernelLog()
        self.uevents: deque[Uevent] = deque()
        self.seqnum = 0
        self.buses: dict[str, Bus] = {}
        self.modules: dict[str, Module] = {}
        root = self.root
        for name in ("block", "bus", "class", "dev", "devices", "firmware", "fs", "kernel",
                     "module", "power"):
            root.mkdir(name)
        self.dev_char = root.get("dev").mkdir("char")
        root.get("dev").mkdir("block")
        self.devices = root.get("devices")
        self.platform = self.devices.mkdir("platform")
        self.system = self.devices.mkdir("system")
        self.virtual = self.devices.mkdir("virtual")
        self.features: set[str] = set()     # behaviour switches set by ABI profiles
        self.probe_faults: dict[str, list] = {}   # driver name -> [errno, remaining count (-1: always)]
        self.work: deque = deque()          # the workqueue: runs before a write returns

    # ==== registration ============================================================================
    def register(self, obj: SysfsObject, kdir: KDir) -> KDir:
        """Put obj's attribute files into kdir and start tracking its changes."""
        obj._changes = self.tree.changes
        for a in obj.attributes():
            mode = a.mode_for(obj)
            if mode:
                target = kdir.mkdir(a.group) if a.group else kdir
                target.add(KAttr(self.tree, a, obj, mode))
        return kdir

    def power_attrs(self, kdir: KDir, dev: Device) -> None:
        for a in POWER_STATE.attributes():
            kdir.add(KAttr(self.tree, a, POWER_STATE, a.mode))

    def bus_register(self, bus: Bus) -> Bus:
        self.buses[bus.name] = bus
        bus.kdir = self.root.get("bus").mkdir(bus.name)
        bus.kdir.mkdir("devices")
        bus.kdir.mkdir("drivers")
        self.register(bus, bus.kdir)
        return bus

    def driver_register(self, drv: Driver) -> Driver:
        bus = drv.bus
        bus.drivers[drv.name] = drv
        drv.kdir = bus.kdir.get("drivers").mkdir(drv.name)
        self.register(drv, drv.kdir)
        if drv.module:
            self.module(drv.module)
            drv.kdir.add(KLink(self.tree, "module", self.root.get("module").get(drv.module)))
        if bus.autoprobe:
            self.driver_attach(drv)
        return drv

    def module(self, name: str, params: dict[str, ModuleParam] | None = None) -> Module:
        mod = self.modules.get(name)
        if mod is None:
            mod = self.modules[name] = Module(name)
            self.register(mod, self.root.get("module").mkdir(name))
        if params:
            pdir = self.root.get("module").get(name).mkdir("parameters")
            for pname, param in params.items():
                mod.params[pname] = param
                param._changes = self.tree.changes
                pdir.add(KAttr(self.tree, param.attribute, param.owner, param.attribute.mode))
        return mod

    # ==== devices (drivers/base/core.c) ==========================================================
    def device_add(self, dev: Device) -> Device:
        if dev.registered:
            raise RuntimeError(f"{dev!r} registered twice")
        parent = dev.parent_kdir()
        if parent.get(dev.name) is not None:
            raise KernelError(errno.EEXIST, f"sysfs: cannot create duplicate filename '{parent.path()}/{dev.name}'")
        dev._changes = self.tree.changes
        dev.kdir = KDir(self.tree, dev.name, owner=dev, populate=dev.populate)
        parent.add(dev.kdir)
        pdev = dev.parent_device()
        if pdev is not None:
            pdev._child_devices.append(dev)
        bus = dev.bus
        if bus is not None:
            bus.devices[dev.name] = dev
            bus.kdir.get("devices").add(KLink(self.tree, dev.name, dev.kdir))
            dev.link("subsystem", bus.kdir)
        elif dev.class_name:
            cdir = self.root.get("class").mkdir(dev.class_name)
            cdir.add(KLink(self.tree, dev.name, dev.kdir))
            dev.link("subsystem", cdir)
        if dev.devt is not None:
            self.dev_char.add(KLink(self.tree, f"{dev.devt[0]}:{dev.devt[1]}", dev.kdir))
        dev.registered = True
        dev.on_add()
        self.uevent(dev, "add")
        if bus is not None and bus.autoprobe:
            self.device_attach(dev)
        return dev

    def device_unregister(self, dev: Device) -> None:
        if not dev.registered or dev.dead:
            return
        for child in reversed(list(dev._child_devices)):
            self.device_unregister(child)
        if dev.driver is not None:
            self.release_driver(dev)
        dev.on_remove()
        bus = dev.bus
        if bus is not None and bus.devices.get(dev.name) is dev:
            del bus.devices[dev.name]
            bus.kdir.get("devices").remove(dev.name)
        elif dev.class_name:
            cdir = self.root.get("class").get(dev.class_name)
            if cdir is not None:
                cdir.remove(dev.name)
        if dev.devt is not None:
            self.dev_char.remove(f"{dev.devt[0]}:{dev.devt[1]}")
        self.uevent(dev, "remove")
        dev.parent_kdir().remove(dev.name)
        pdev = dev.parent_device()
        if pdev is not None and dev in pdev._child_devices:
            pdev._child_devices.remove(dev)
        dev.dead = True
        dev.registered = False

    # ==== binding (drivers/base/dd.c, bus.c) =====================================================
    def really_probe(self, dev: Device, drv: Driver) -> None:
        bus = drv.bus
        dev.driver = drv
        self._driver_links(dev, drv, add=True)
        try:
            self._probe_fault(drv)
            bus.probe(dev, drv)
        except KernelError as e:
            dev.release_devres()
            self._driver_links(dev, drv, add=False)
            dev.driver = None
            if e.errno in (errno.ENODEV, errno.ENXIO):
                self.log.emit("debug", f"{drv.name} {dev.name}: probe with driver {drv.name} "
                              f"rejects match {-e.errno}")
            else:
                self.log.emit("err", f"{drv.name} {dev.name}: probe with driver {drv.name} "
                              f"failed with error {-e.errno}")
            raise
        if dev.kdir is not None and dev.kdir.populated:
            for a in drv.device_attributes:
                mode = a.mode_for(dev)
                if mode:
                    (dev.kdir.mkdir(a.group) if a.group else dev.kdir).add(KAttr(self.tree, a, dev, mode))
        self.log.emit("debug", f"{drv.name} {dev.name}: bound to driver {drv.name}")
        self.uevent(dev, "bind")

    def _probe_fault(self, drv: Driver) -> None:
        """`cxlfs fault MNT probe-fail DRIVER --errno E`: the next probes fail with E."""
        fault = self.probe_faults.get(drv.name)
        if fault is None or fault[1] == 0:
            return
        if fault[1] > 0:
            fault[1] -= 1
        raise KernelError(fault[0], "injected probe failure")

    def _driver_links(self, dev: Device, drv: Driver, add: bool) -> None:
        if add:
            dev.link("driver", drv.kdir)
            drv.kdir.add(KLink(self.tree, dev.name, dev.kdir))
        else:
            dev.unlink("driver")
            drv.kdir.remove(dev.name)

    def release_driver(self, dev: Device) -> None:
        """__device_release_driver: links, dev_groups, remove(), devres, then the unbind uevent."""
        drv = dev.driver
        if drv is None:
            return
        self._driver_links(dev, drv, add=False)
        if dev.kdir is not None and dev.kdir.populated:
            for a in drv.device_attributes:
                (dev.kdir.get(a.group) if a.group else dev.kdir).remove(a.name)
        drv.bus.remove(dev, drv)
        dev.release_devres()
        dev.driver = None
        self.uevent(dev, "unbind")

    def device_attach(self, dev: Device) -> bool:
        """Autoprobe walk: drivers in registration order; probe errors are ignored."""
        bus = dev.bus
        if bus is None or dev.driver is not None or dev.dead:
            return dev.driver is not None
        for drv in list(bus.drivers.values()):
            if not bus.match(dev, drv):
                continue
            try:
                self.really_probe(dev, drv)
                return True
            except KernelError:
                continue
        return False

    def driver_attach(self, drv: Driver) -> None:
        bus = drv.bus
        for dev in list(bus.devices.values()):
            if dev.driver is None and not dev.dead and bus.match(dev, drv):
                try:
                    self.really_probe(dev, drv)
                except KernelError:
                    pass

    def bind(self, drv: Driver, buf: str) -> None:
        """bind_store: not found / no match -> ENODEV (before) already bound -> EBUSY."""
        bus = drv.bus
        dev = bus.find_device(buf)
        if dev is None or not bus.match(dev, drv) or dev.dead:
            raise KernelError(errno.ENODEV)
        if dev.driver is not None:
            raise KernelError(errno.EBUSY)
        try:
            self.really_probe(dev, drv)
        except KernelError as e:
            raise KernelError(probe_errno(e.errno), e.message) from None

    def unbind(self, drv: Driver, buf: str) -> None:
        dev = drv.bus.find_device(buf)
        if dev is None or dev.driver is not drv:
            raise KernelError(errno.ENODEV)
        self.release_driver(dev)

    # ==== uevents ===================================================================================
    def uevent(self, dev: Device, action: str, extra: Iterable[tuple[str, str]] = ()) -> Uevent | None:
        subsystem = dev.subsystem
        if subsystem is None or dev.kdir is None:
            return None     # dev_uevent_filter: devices without bus or class send nothing
        return self._emit(action, dev.devpath(), subsystem, [*extra, *dev.uevent_env()])

    def kobject_uevent(self, devpath: str, subsystem: str, action: str,
                       extra: Iterable[tuple[str, str]] = ()) -> Uevent:
        return self._emit(action, devpath, subsystem, list(extra))

    def _emit(self, action: str, devpath: str, subsystem: str, env: list) -> Uevent:
        self.seqnum += 1
        ev = Uevent(action, devpath, subsystem, tuple(env), self.seqnum)
        self.uevents.append(ev)
        return ev

    def drain_uevents(self) -> list[Uevent]:
        out = list(self.uevents)
        self.uevents.clear()
        return out

    # ==== the verbs the FUSE layer uses =============================================================
    def read(self, node: KAttr) -> bytes:
        if not node.alive:
            raise KernelError(errno.ENODEV)
        show = node.attr.show
        if show is None or not node.mode & 0o444:
            raise KernelError(errno.EACCES)
        try:
            text = show(node.owner)
        except KernelError:
            raise
        except Exception:
            self._bug(f"show {node.path()}")
            raise KernelError(errno.EIO) from None
        data = text.encode()
        return data[:PAGE_SIZE]

    def write(self, node: KAttr, data: bytes) -> int:
        """One write() = one store(), as kernfs does: truncated to a page, NUL-terminated."""
        if not node.alive:
            raise KernelError(errno.ENODEV)
        store = node.attr.store_fn
        if store is None or not node.mode & 0o222:
            raise KernelError(errno.EACCES)
        data = data[:PAGE_SIZE]
        if not data:
            return 0
        try:
            ret = store(node.owner, WriteBuf(data))
        except KernelError:
            raise
        except Exception:
            self._bug(f"store {node.path()} {data[:64]!r}")
            raise KernelError(errno.EIO) from None
        finally:
            self.settle()
        return len(data) if ret is None else ret

    def defer(self, fn) -> None:
        """queue_work(): run ``fn`` once the current operation is done (before it returns)."""
        self.work.append(fn)

    def run_work(self) -> None:
        while self.work:
            fn = self.work.popleft()
            try:
                fn()
            except KernelError as e:
                self.log.emit("err", f"workqueue: {e}")
            except Exception:
                self._bug("deferred work")

    def platform_device(self, name: str) -> Device:
        return self.buses["platform"].devices[name]

    def settle(self) -> None:
        """After every store: run queued work, re-evaluate is_visible() on changed devices."""
        self.run_work()
        for obj in list(self.tree.changes.dirty):
            if isinstance(obj, Device) and obj.registered and obj.has_dynamic_attributes():
                obj.sync_attributes()

    def _bug(self, what: str) -> None:
        self.log.emit("err", f"cxlfs: BUG: internal error in {what}")
        for line in traceback.format_exc().rstrip().splitlines():
            self.log.emit("err", f"cxlfs:   {line}")

    # convenience for tests and tools: path based access
    def node(self, path: str) -> KNode:
        """The node at ``path``, following symlinks in the directory part (not the last)."""
        head, _, last = path.rstrip("/").rpartition("/")
        parent = self.tree.lookup(_resolve(self, head)) if head.strip("/") else self.root
        node = parent.get(last) if isinstance(parent, KDir) and last else parent
        if node is None:
            raise FileNotFoundError(path)
        return node

    def cat(self, path: str) -> str:
        node = self.node(path)
        while isinstance(node, KLink):
            node = node.target
        if not isinstance(node, KAttr):
            raise IsADirectoryError(path)
        return self.read(node).decode()

    def echo(self, path: str, text: str | bytes) -> int:
        node = self.node(path)
        while isinstance(node, KLink):
            node = node.target
        if not isinstance(node, KAttr):
            raise IsADirectoryError(path)
        return self.write(node, text.encode() if isinstance(text, str) else text)

    def ls(self, path: str) -> list[str]:
        node = self.node(path)
        while isinstance(node, KLink):
            node = node.target
        assert isinstance(node, KDir)
        return [n.name for n in node.listing()]

    def readlink(self, path: str) -> str:
        node = self.node(path)
        assert isinstance(node, KLink)
        return node.text()


def _resolve(kernel: Kernel, path: str) -> str:
    """Follow symlinks in the directory part of a path, as the VFS does before FUSE sees it."""
    parts = [p for p in path.strip("/").split("/") if p]
    node: KNode = kernel.root
    for i, part in enumerate(parts):
        assert isinstance(node, KDir), path
        child = node.get(part)
        if child is None:
            raise FileNotFoundError(path)
        while isinstance(child, KLink):
            child = child.target
        node = child
    return node.path()
