"""Devices, buses and drivers, modelled on drivers/base/{core,bus,dd}.c.

One mechanism serves every subsystem: ``Bus.bind``/``unbind``/``drivers_probe`` and
autoprobe all go through ``really_probe`` and ``release_driver``, so their errno and the
order of side effects (driver link, dev_groups, bind/unbind uevents) are the kernel's.
"""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Callable, ClassVar

from .attrs import Attribute, SysfsObject, attr
from .errors import EPROBE_DEFER, KernelError
from .kernfs import KAttr, KDir, KLink, KNode
from .parse import WriteBuf, sysfs_streq
from .uevent import parse_synthetic

if TYPE_CHECKING:
    from .kernel import Kernel


class Device(SysfsObject):
    """struct device.  Subclasses are the device types: they set ``bus_name``, ``devtype``
    and declare their attributes; ``populate_links`` adds the type's fixed symlinks."""

    bus_name: ClassVar[str | None] = None
    class_name: ClassVar[str | None] = None
    devtype: ClassVar[str | None] = None
    has_power: ClassVar[bool] = False       # power/ directory (absent on CXL core devices)
    devnode_dir: ClassVar[str] = ""         # DEVNAME prefix: "cxl/" for memdevs

    def __init__(self, kernel: "Kernel", name: str, parent: "Device | KDir | None"):
        self._changes = None
        self.kernel = kernel
        self.name = name
        self.parent = parent
        self.driver: Driver | None = None
        self.devt: tuple[int, int] | None = None
        self.kdir: KDir | None = None
        self.registered = False
        self.dead = False
        self._links: dict[str, Callable[[], KNode | None] | KNode] = {}
        self._devres: list[Callable[[], None]] = []
        self._child_devices: list[Device] = []

    # -- identity -----------------------------------------------------------------------------
    @property
    def bus(self) -> "Bus | None":
        return self.kernel.buses.get(self.bus_name) if self.bus_name else None

    @property
    def subsystem(self) -> str | None:
        return self.bus_name or self.class_name

    def devpath(self) -> str:
        return self.kdir.path() if self.kdir is not None else ""

    def parent_kdir(self) -> KDir:
        p = self.parent
        return p.kdir if isinstance(p, Device) else p

    def parent_device(self) -> "Device | None":
        return self.parent if isinstance(self.parent, Device) else None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    # -- logging like dev_info/dev_err: "<driver or bus> <name>: text" --------------------------
    def log(self, level: str, text: str) -> None:
        who = self.driver.name if self.driver else (self.subsystem or "")
        self.kernel.log.emit(level, f"{who} {self.name}: {text}" if who else f"{self.name}: {text}")

    def err(self, text: str, err: int | None = None) -> KernelError | None:
        """dev_err(); with an errno, returns the KernelError to raise."""
        self.log("err", text)
        return KernelError(err, text) if err is not None else None

    def dbg(self, text: str, err: int | None = None) -> KernelError | None:
        self.log("debug", text)
        return KernelError(err, text) if err is not None else None

    # -- uevent ---------------------------------------------------------------------------------
    def devnode_name(self) -> str:
        return self.devnode_dir + self.name

    def uevent_env(self) -> list[tuple[str, str]]:
        """dev_uevent(): what the uevent file shows and every event carries."""
        env: list[tuple[str, str]] = []
        if self.devt is not None:
            env += [("MAJOR", str(self.devt[0])), ("MINOR", str(self.devt[1])),
                    ("DEVNAME", self.devnode_name())]
        if self.devtype:
            env.append(("DEVTYPE", self.devtype))
        if self.driver is not None:
            env.append(("DRIVER", self.driver.name))
        bus = self.bus
        if bus is not None:
            env += bus.device_uevent(self)
        return env

    @attr.rw
    def uevent(self) -> str:
        if self.subsystem is None:
            return ""
        return "".join(f"{k}={v}\n" for k, v in self.uevent_env())

    @uevent.store
    def uevent(self, buf: WriteBuf) -> None:
        action, env = parse_synthetic(buf)
        self.kernel.uevent(self, action, env)

    # -- directory contents (lazy) --------------------------------------------------------------
    def populate(self, kdir: KDir) -> None:
        tree = self.kernel.tree
        for a in self.attributes():
            mode = a.mode_for(self)
            if mode:
                _attr_dir(kdir, a).add(KAttr(tree, a, self, mode))
        if self.driver is not None:
            for a in self.driver.device_attributes:
                mode = a.mode_for(self)
                if mode:
                    _attr_dir(kdir, a).add(KAttr(tree, a, self, mode))
        if self.has_power:
            kdir.mkdir("power", populate=lambda d: self.kernel.power_attrs(d, self))
        for name, target in self._links.items():
            node = target() if callable(target) else target
            if node is not None:
                kdir.add(KLink(tree, name, node))

    def link(self, name: str, target: "KNode | Device | Callable[[], KNode | None]") -> None:
        """Add a symlink in this device's directory (kept as state; built when the dir is)."""
        if isinstance(target, Device):
            dev = target
            target = lambda: dev.kdir  # noqa: E731
        self._links[name] = target
        if self.kdir is not None and self.kdir.populated:
            node = target() if callable(target) else target
            if node is not None:
                self.kdir.add(KLink(self.kernel.tree, name, node))

    def unlink(self, name: str) -> None:
        if self._links.pop(name, None) is not None and self.kdir is not None:
            self.kdir.remove(name)

    def sync_attributes(self) -> None:
        """sysfs_update_group(): re-run is_visible() and add/remove/re-mode files."""
        kdir = self.kdir
        if kdir is None or not kdir.populated or self.dead:
            return
        attrs = list(self.attributes())
        if self.driver is not None:
            attrs += self.driver.device_attributes
        for a in attrs:
            if a.visible is None:
                continue
            mode = a.mode_for(self)
            parent = kdir.get(a.group) if a.group else kdir
            existing = parent.get(a.name) if isinstance(parent, KDir) else None
            if mode and (existing is None or not isinstance(existing, KAttr) or existing.mode != mode):
                _attr_dir(kdir, a).add(KAttr(self.kernel.tree, a, self, mode))
            elif not mode and existing is not None:
                parent.remove(a.name)

    def has_dynamic_attributes(self) -> bool:
        return any(a.visible is not None for a in self.attributes())

    # -- devres -----------------------------------------------------------------------------------
    def devm(self, cleanup: Callable[[], None]) -> None:
        """devm_add_action: run on unbind (or failed probe), last in first out."""
        self._devres.append(cleanup)

    def devm_add_child(self, child: "Device") -> "Device":
        """Register ``child`` and unregister it when this device's driver goes away."""
        self.kernel.device_add(child)
        self.devm(lambda: self.kernel.device_unregister(child))
        return child

    def release_devres(self) -> None:
        while self._devres:
            self._devres.pop()()

    # -- hooks for subclasses -----------------------------------------------------------------------
    def on_add(self) -> None:
        """Called after the directory exists, before the add uevent (fixed links go here)."""

    def on_remove(self) -> None:
        """Called while the device is being unregistered, after its driver is gone."""


def _attr_dir(kdir: KDir, a: Attribute) -> KDir:
    return kdir.mkdir(a.group) if a.group else kdir


class Driver(SysfsObject):
    """struct device_driver.  ``device_attributes`` are the driver's dev_groups: they appear in
    a device's directory only while it is bound to this driver."""

    name: ClassVar[str] = ""
    bus_name: ClassVar[str] = ""
    module: ClassVar[str | None] = None
    suppress_bind_attrs: ClassVar[bool] = False
    device_attributes: ClassVar[list[Attribute]] = []

    def __init__(self, kernel: "Kernel"):
        self._changes = None
        self.kernel = kernel
        self.kdir: KDir | None = None

    @property
    def bus(self) -> "Bus":
        return self.kernel.buses[self.bus_name]

    def match(self, dev: Device) -> bool:
        return False

    def probe(self, dev: Device) -> None:
        pass

    def remove(self, dev: Device) -> None:
        pass

    def bound_devices(self) -> list[Device]:
        return [d for d in self.bus.devices.values() if d.driver is self]

    def __repr__(self) -> str:
        return f"<Driver {self.bus_name}/{self.name}>"

    def _bind_visible(self) -> int:
        return 0 if self.suppress_bind_attrs else 0o200

    @attr.wo(visible=_bind_visible)
    def bind(self, buf: WriteBuf) -> None:
        self.kernel.bind(self, buf)

    @attr.wo(visible=_bind_visible)
    def unbind(self, buf: WriteBuf) -> None:
        self.kernel.unbind(self, buf)

    @attr.wo
    def uevent(self, buf: WriteBuf) -> None:
        action, env = parse_synthetic(buf)
        self.kernel.kobject_uevent(self.kdir.path(), "drivers", action, env)


class Bus(SysfsObject):
    """struct bus_type with its /sys/bus/<name> files."""

    name: ClassVar[str] = ""

    def __init__(self, kernel: "Kernel"):
        self._changes = None
        self.kernel = kernel
        self.devices: dict[str, Device] = {}
        self.drivers: dict[str, Driver] = {}
        self.autoprobe = True
        self.kdir: KDir | None = None

    def match(self, dev: Device, drv: Driver) -> bool:
        return drv.match(dev)

    def probe(self, dev: Device, drv: Driver) -> None:
        """bus->probe; the default calls the driver's probe."""
        drv.probe(dev)

    def remove(self, dev: Device, drv: Driver) -> None:
        drv.remove(dev)

    def device_uevent(self, dev: Device) -> list[tuple[str, str]]:
        """bus->uevent: extra keys such as MODALIAS."""
        return []

    def find_device(self, buf: str) -> Device | None:
        """bus_find_device_by_name(): sysfs_streq, so a trailing newline is fine."""
        name = buf[:-1] if buf.endswith("\n") else buf
        dev = self.devices.get(name)
        return dev if dev is not None and sysfs_streq(buf, dev.name) else None

    def __repr__(self) -> str:
        return f"<Bus {self.name}>"

    @attr.rw
    def drivers_autoprobe(self) -> str:
        return "1\n" if self.autoprobe else "0\n"

    @drivers_autoprobe.store
    def drivers_autoprobe(self, buf: WriteBuf) -> None:
        self.autoprobe = not buf.startswith("0")

    @attr.wo
    def drivers_probe(self, buf: WriteBuf) -> None:
        dev = self.find_device(buf)
        if dev is None:
            raise KernelError(errno.ENODEV)
        if dev.driver is None:
            self.kernel.device_attach(dev)

    @attr.wo
    def uevent(self, buf: WriteBuf) -> None:
        action, env = parse_synthetic(buf)
        self.kernel.kobject_uevent(self.kdir.path(), "bus", action, env)


class SubsystemRoot(SysfsObject):
    """A subsystem directory that is no device (/sys/devices/system/memory, .../node): its
    uevent file reads empty, and synthetic writes are checked but send nothing."""

    @attr.rw
    def uevent(self) -> str:
        return ""

    @uevent.store
    def uevent(self, buf: WriteBuf) -> None:
        parse_synthetic(buf)


def probe_errno(err: int) -> int:
    return errno.EAGAIN if err == EPROBE_DEFER else err

