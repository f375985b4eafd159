"""ABI profiles: today's kernel and the 2026 proposals for per-region memory online policy.

A profile is chosen at mount (``cxlfs mount --abi NAME -o key=value``).  It adds drivers
(after mainline's, as a later-loaded module would), swaps what a bound RAM region creates,
and switches a few behaviours; everything else is the mainline model.  ``cxlfs abi diff``
reads these declarations (drivers, device types and their attributes), not prose.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from . import explicit, sketch, sysram


@dataclass(frozen=True)
class Option:
    values: tuple[str, ...]
    default: str
    doc: str


@dataclass(frozen=True)
class Profile:
    name: str
    title: str
    series: str
    date: str
    summary: str
    flow: tuple[str, ...] = ()
    add_drivers: tuple = ()
    replace_drivers: dict = field(default_factory=dict)   # mainline driver class -> replacement
    device_types: tuple = ()
    options: dict[str, Option] = field(default_factory=dict)
    features: frozenset[str] = frozenset()
    ram_backend: Callable | None = None

    def parse_options(self, given: dict[str, str]) -> dict[str, str]:
        out = {k: o.default for k, o in self.options.items()}
        for key, value in given.items():
            if key in ("block_size", "auto_online_blocks"):
                continue          # topology options, handled by the CLI
            opt = self.options.get(key)
            if opt is None:
                raise ValueError(f"-o {key}: not an option of profile {self.name} "
                                 f"(known: {', '.join(self.options) or 'none'})")
            if value not in opt.values:
                raise ValueError(f"-o {key}={value}: must be one of {', '.join(opt.values)}")
            out[key] = value
        return out

    def setup(self, kernel, options: dict[str, str]) -> None:
        kernel.profile_options = options
        kernel.features |= self.features
        if self.ram_backend is not None:
            kernel.cxl.region_backends["ram"] = self.ram_backend

    def cxl_drivers(self, mainline: tuple) -> list:
        drivers = [self.replace_drivers.get(d, d) for d in mainline]
        return [d for d in drivers if d is not None] + list(self.add_drivers)


def _mainline_dax_driver():
    from ..dax.cxl import CxlDaxRegionDriver
    return CxlDaxRegionDriver


PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile(
        name="mainline", title="today's kernel (default)", series="mainline", date="2026",
        summary="RAM regions bound to cxl_region get dax_regionN; kmem onlines with the global "
                "auto_online_blocks policy, sampled when kmem binds.",
        flow=("echo regionN > /sys/bus/cxl/drivers/cxl_region/bind",
              "daxctl reconfigure-device --mode=system-ram daxN.0   # or daxctl online-memory")),
    Profile(
        name="explicit-driver-v1", title="cxl: explicit DAX driver selection and hotplug",
        series="[PATCH 0/9] cxl: explicit DAX driver selection and hotplug", date="2026-01-29",
        summary="cxl_sysram_region creates sysram_regionN with online_type (invalid until set); "
                "cxl_dax_kmem_region builds dax_regionN under it with kmem and that online type; "
                "cxl_devdax_region gives device-dax.  Creators record the default online type "
                "in the dax device when they create it (patch 3).",
        flow=("echo regionN > /sys/bus/cxl/drivers/cxl_sysram_region/bind",
              "echo online_movable > /sys/bus/cxl/devices/sysram_regionN/online_type",
              "echo sysram_regionN > /sys/bus/cxl/drivers/cxl_dax_kmem_region/bind"),
        add_drivers=explicit.DRIVERS, device_types=explicit.DEVICE_TYPES,
        features=frozenset({"dax_online_type_at_creation"})),
    Profile(
        name="sysram-rfc-v4", title="cxl/core: Add cxl_sysram region type",
        series="[RFC PATCH v4 24/27] cxl/core: Add cxl_sysram region type", date="2026-02-22",
        summary="No DAX layer for RAM regions: cxl_region creates sysram_regionN (cxl_sysram, id 10) "
                "with a write-only hotplug file; a Kconfig choice decides whether probe hot-adds.",
        flow=("echo regionN > /sys/bus/cxl/drivers/cxl_region/bind",
              "echo online_movable > /sys/bus/cxl/devices/sysram_regionN/hotplug",
              "echo offline > /sys/bus/cxl/devices/sysram_regionN/hotplug   # remove again"),
        add_drivers=sysram.DRIVERS, device_types=sysram.DEVICE_TYPES, ram_backend=sysram.add_sysram,
        options={"sysram_online_type": Option(tuple(sysram.KCONFIG_DEFAULTS), "system-default",
                                              "CONFIG_CXL_SYSRAM_ONLINE_TYPE_*: what probe does")}),
    Profile(
        name="dax-online-type-v5", title="dax: plumb hotplug online_type through dax",
        series="[PATCH v5 6/9] dax: plumb hotplug online_type through dax", date="2026-06",
        summary="dax devices carry an online type; creators pass DAX_ONLINE_DEFAULT, which kmem "
                "resolves to the system default when it binds (not when the device is created); "
                "the sysram path's explicit type overrides it.",
        flow=("echo regionN > /sys/bus/cxl/drivers/cxl_sysram_region/bind",
              "echo online_movable > /sys/bus/cxl/devices/sysram_regionN/online_type",
              "echo sysram_regionN > /sys/bus/cxl/drivers/cxl_dax_kmem_region/bind"),
        add_drivers=explicit.DRIVERS, device_types=explicit.DEVICE_TYPES),
    Profile(
        name="design-sketch", title="sysram_region + dax_region hotplug (list discussion)",
        series="linux-cxl design discussion", date="2026-01..03",
        summary="sysram_region binds a RAM region and leaves dax_regionN unbound; its hotplug "
                "file picks the online type; binding it to dax_region builds the kmem device.",
        flow=("echo regionN > /sys/bus/cxl/drivers/sysram_region/bind",
              "echo online_movable > /sys/bus/cxl/devices/dax_regionN/hotplug",
              "echo dax_regionN > /sys/bus/cxl/drivers/dax_region/bind"),
        add_drivers=sketch.DRIVERS, device_types=sketch.DEVICE_TYPES,
        replace_drivers={_mainline_dax_driver(): sketch.DaxRegionDriver},
        ram_backend=sketch.add_hotplug_dax_region),
)}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown ABI profile '{name}' (known: {', '.join(PROFILES)})") from None
