"""`cxlfs abi diff A B`: what a proposal changes, read from the declarations themselves.

Drivers come from each profile's driver list, device types from the Device classes the
model defines (mainline) plus the profile's own, attributes from their ``sysfs_attributes``
(path, mode, accepted values).  Nothing here is written by hand per profile.
"""
from __future__ import annotations

import stat
from dataclasses import dataclass

from ..core.device import Device
from .profiles import Profile, get_profile

MAINLINE_PACKAGES = ("cxlfs.cxl.", "cxlfs.dax.", "cxlfs.mm.", "cxlfs.core.")


@dataclass(frozen=True)
class DriverInfo:
    bus: str
    name: str
    binds: str
    bind_files: bool

    def line(self) -> str:
        files = "bind/unbind" if self.bind_files else "no bind files"
        return f"{self.bus}/{self.name:<22} binds {self.binds:<28} {files}"


def _all_device_classes() -> list[type]:
    out, todo = [], [Device]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            out.append(sub)
            todo.append(sub)
    return out


def _type_name(cls: type) -> str:
    devtype = getattr(cls, "devtype", None)
    if getattr(cls, "cxl_id", None) is not None and cls.bus_name == "cxl":
        return f"{devtype or cls.__name__} (cxl:t{cls.cxl_id})"
    return devtype or f"{cls.__name__} ({cls.bus_name or cls.class_name or 'no bus'})"


def device_types(profile: Profile) -> dict[str, type]:
    """Concrete device types a profile's tree can contain, keyed by a readable name."""
    out: dict[str, type] = {}
    for cls in _all_device_classes():
        if cls.__module__.startswith(MAINLINE_PACKAGES):
            out.setdefault(_type_name(cls), cls)
    for cls in profile.device_types:        # a proposal's type replaces mainline's of that name
        out[_type_name(cls)] = cls
    return out


def drivers(profile: Profile) -> list[DriverInfo]:
    from ..dax.bus import DeviceDaxDriver
    from ..dax.kmem import KmemDriver
    from ..topology.build import MAINLINE_CXL_DRIVERS
    out = []
    for drv in [DeviceDaxDriver, KmemDriver] + profile.cxl_drivers(MAINLINE_CXL_DRIVERS):
        if drv.bus_name == "cxl":
            binds = f"cxl:t{drv.id} devices"
        else:
            binds = f"{drv.type} dax devices (+new_id)"
        out.append(DriverInfo(drv.bus_name, drv.name, binds, not drv.suppress_bind_attrs))
    return out


def attributes(cls: type) -> dict[str, str]:
    out = {}
    for path, a in cls.sysfs_attributes.items():
        mode = stat.filemode(stat.S_IFREG | a.mode)[1:]
        values = f"  values: {'|'.join(a.values)}" if a.values else ""
        out[path] = f"{mode}{values}"
    return out


def abi_diff(a_name: str, b_name: str) -> str:
    a, b = get_profile(a_name), get_profile(b_name)
    lines = [f"--- {a.name}: {a.series} ({a.date})", f"+++ {b.name}: {b.series} ({b.date})", ""]
    lines.append(f"  {b.summary}")
    lines.append("")

    lines.append("## drivers")
    da, db = {d.name: d for d in drivers(a)}, {d.name: d for d in drivers(b)}
    changed = False
    for name in sorted(set(da) | set(db)):
        if name not in db:
            lines.append(f"- {da[name].line()}")
        elif name not in da:
            lines.append(f"+ {db[name].line()}")
        elif da[name] != db[name]:
            lines.append(f"- {da[name].line()}")
            lines.append(f"+ {db[name].line()}")
        else:
            continue
        changed = True
    if not changed:
        lines.append("  (same)")
    lines.append("")

    lines.append("## device types and attributes")
    ta, tb = device_types(a), device_types(b)
    changed = False
    for name in sorted(set(ta) | set(tb)):
        if name not in tb:
            lines.append(f"- {name}")
            changed = True
            continue
        attrs_b = attributes(tb[name])
        if name not in ta:
            lines.append(f"+ {name}")
            for path, desc in attrs_b.items():
                lines.append(f"+     {path:<28} {desc}")
            changed = True
            continue
        attrs_a = attributes(ta[name])
        diffs = []
        for path in sorted(set(attrs_a) | set(attrs_b)):
            if attrs_a.get(path) == attrs_b.get(path):
                continue
            if path in attrs_a:
                diffs.append(f"-     {path:<28} {attrs_a[path]}")
            if path in attrs_b:
                diffs.append(f"+     {path:<28} {attrs_b[path]}")
        if diffs:
            lines.append(f"~ {name}")
            lines += diffs
            changed = True
    if not changed:
        lines.append("  (same)")
    lines.append("")

    lines.append("## behaviour")
    ba, bb = _behaviour(a), _behaviour(b)
    changed = False
    for key in sorted(set(ba) | set(bb)):
        if ba.get(key) != bb.get(key):
            if key in ba:
                lines.append(f"- {key}: {ba[key]}")
            if key in bb:
                lines.append(f"+ {key}: {bb[key]}")
            changed = True
    if not changed:
        lines.append("  (same)")
    lines.append("")

    lines.append("## documented flow")
    if a.flow == b.flow:
        lines += [f"  {line}" for line in b.flow]
    else:
        lines += [f"- {line}" for line in a.flow] + [f"+ {line}" for line in b.flow]
    return "\n".join(lines) + "\n"


def _behaviour(p: Profile) -> dict[str, str]:
    from ..dax.cxl import add_dax_region
    backend = p.ram_backend or add_dax_region
    out = {"bound RAM region creates": (backend.__doc__ or backend.__name__).strip().splitlines()[0],
           "kmem online type": "recorded when the dax device is created (system default then)"
           if "dax_online_type_at_creation" in p.features else
           "the device's explicit type, else the system default when kmem binds"}
    for key, opt in p.options.items():
        out[f"option -o {key}"] = f"{'|'.join(opt.values)} (default {opt.default}): {opt.doc}"
    return out
