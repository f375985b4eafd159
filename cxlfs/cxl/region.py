"""Regions (drivers/cxl/core/region.c): creation, configuration, HDM decoder programming, commit.

The configuration state machine, in the kernel's words::

    IDLE --size--> INTERLEAVE_ACTIVE --last target--> ACTIVE --commit=1--> COMMIT
    COMMIT --commit=0--> ACTIVE;  a detached target drops ACTIVE to INTERLEAVE_ACTIVE;
    size=0 drops INTERLEAVE_ACTIVE to IDLE.

Every store checks in the kernel's order, so the errno a script sees is the one the
kernel would return, and nothing changes when a check fails.
"""
from __future__ import annotations

import errno
import uuid as uuidlib
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Iterator

from ..core.attrs import Attribute, attr
from ..core.errors import KernelError
from ..core.parse import (WriteBuf, hex_prefixed, kstrtobool, kstrtoint, kstrtoull,
                          parse_uuid, sscanf_prefix_int, sysfs_streq)
from .bus import CXL_DEVICE_PMEM_REGION, CXL_DEVICE_REGION, CXLDevice, CXLDriver
from .auto import XORMAPS
from .decoder import NO_RESOURCE, SZ_256M, EndpointDecoder, RootDecoder, SwitchDecoder

if TYPE_CHECKING:
    from .core import CXLCore
    from .port import CXLPort, Dport

MAX_TARGETS = 16
VALID_WAYS = (1, 2, 3, 4, 6, 8, 12, 16)


class State(IntEnum):
    IDLE = 0
    INTERLEAVE_ACTIVE = 1
    ACTIVE = 2
    RESET_PENDING = 3
    COMMIT = 4


@dataclass(eq=False)
class PortRef:
    """cxl_region_ref: the decoder a region reserved in one switch / host-bridge port."""
    port: "CXLPort"
    decoder: SwitchDecoder
    endpoints: list[EndpointDecoder] = field(default_factory=list)


def is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


class Region(CXLDevice):
    devtype = "cxl_region"
    cxl_id = CXL_DEVICE_REGION

    def __init__(self, kernel, region_id: int, cxlrd: RootDecoder, mode: str):
        super().__init__(kernel, f"region{region_id}", cxlrd)
        self.id = region_id
        self.cxlrd = cxlrd
        self.mode = mode
        self.uuid: uuidlib.UUID | None = None
        self.ways = 0
        self.granularity = 0
        self.hpa_start: int | None = None
        self.hpa_size = 0
        self.targets: list[EndpointDecoder | None] = [None] * MAX_TARGETS
        self.state = State.IDLE
        self.auto = False
        self.refs: dict["CXLPort", PortRef] = {}

    # ---- helpers ------------------------------------------------------------------------------
    @property
    def regions(self) -> "Regions":
        return self.kernel.cxl.regions

    @property
    def is_locked(self) -> bool:
        return self.cxlrd.locked or any(t is not None and t.locked for t in self.targets)

    def attached(self) -> list[EndpointDecoder]:
        return [t for t in self.targets[:max(self.ways, 0)] if t is not None]

    @property
    def hpa_end(self) -> int:
        return (self.hpa_start or 0) + self.hpa_size

    # ---- attributes ---------------------------------------------------------------------------
    @attr.rw(visible=lambda self: 0o644 if self.mode == "pmem" else 0o444)
    def uuid(self) -> str:
        if self.mode != "pmem":
            return "\n"
        return f"{self.uuid or uuidlib.UUID(int=0)}\n"

    @uuid.store
    def uuid(self, buf: WriteBuf) -> None:
        if buf.count != 37:
            raise KernelError(errno.EINVAL)
        value = parse_uuid(buf)
        if value.int == 0:
            raise KernelError(errno.EINVAL)
        if value == self.uuid:
            return
        if self.state >= State.ACTIVE:
            raise KernelError(errno.EBUSY)
        if any(r is not self and r.uuid == value for r in self.regions.all()):
            raise self.dbg("duplicate uuid", errno.EBUSY)
        self.uuid = value

    @attr.ro
    def mode(self) -> str:
        return f"{self.mode}\n" if self.mode in ("ram", "pmem") else "\n"

    @attr.rw
    def interleave_ways(self) -> str:
        return f"{self.ways}\n"

    @interleave_ways.store
    def interleave_ways(self, buf: WriteBuf) -> None:
        val = kstrtoint(buf, 0)
        root_ways = self.cxlrd.ways
        if val not in VALID_WAYS:
            raise KernelError(errno.EINVAL)
        if val % root_ways or not is_pow2(val // root_ways):
            raise self.dbg(f"interleave_ways {val} incompatible with root decoder ways {root_ways}",
                           errno.EINVAL)
        if self.state >= State.INTERLEAVE_ACTIVE:
            raise KernelError(errno.EBUSY)
        self.ways = val

    @attr.rw
    def interleave_granularity(self) -> str:
        return f"{self.granularity}\n"

    @interleave_granularity.store
    def interleave_granularity(self, buf: WriteBuf) -> None:
        val = kstrtoint(buf, 0)
        if not is_pow2(val) or not 256 <= val <= 16384:
            raise KernelError(errno.EINVAL)
        if self.cxlrd.ways > 1 and val != self.cxlrd.granularity:
            raise self.dbg(f"granularity {val} must match root decoder granularity "
                           f"{self.cxlrd.granularity}", errno.EINVAL)
        if self.state >= State.INTERLEAVE_ACTIVE:
            raise KernelError(errno.EBUSY)
        self.granularity = val

    @attr.rw
    def size(self) -> str:
        return f"{hex_prefixed(self.hpa_size)}\n"

    @size.store
    def size(self, buf: WriteBuf) -> None:
        val = kstrtoull(buf, 0)
        if val:
            self.regions.alloc_hpa(self, val)
        else:
            self.regions.free_hpa(self)

    @attr.ro
    def resource(self) -> str:
        return f"{hex_prefixed(NO_RESOURCE if self.hpa_start is None else self.hpa_start)}\n"

    @attr.rw
    def commit(self) -> str:
        return "1\n" if self.state >= State.COMMIT else "0\n"

    @commit.store
    def commit(self, buf: WriteBuf) -> None:
        if kstrtobool(buf):
            self.regions.commit(self)
        else:
            self.regions.decommit(self)

    @attr.ro
    def locked(self) -> str:
        return "1\n" if self.is_locked else "0\n"

    def show_target(self, pos: int) -> str:
        t = self.targets[pos]
        return f"{t.name}\n" if t is not None else "\n"

    def store_target(self, pos: int, buf: WriteBuf) -> None:
        if sysfs_streq(buf, ""):
            self.regions.detach_position(self, pos)
            return
        dev = self.kernel.buses["cxl"].find_device(buf)
        if dev is None:
            raise KernelError(errno.ENODEV)
        if not isinstance(dev, EndpointDecoder):
            raise KernelError(errno.EINVAL)
        self.regions.attach(self, dev, pos)

    def on_remove(self) -> None:
        self.regions.release(self)


def _target_attribute(pos: int) -> Attribute:
    return Attribute(f"target{pos}", 0o644,
                     show=lambda self: self.show_target(pos),
                     store=lambda self, buf: self.store_target(pos, buf),
                     visible=lambda self: 0o644 if pos < self.ways else 0,
                     doc=f"endpoint decoder at interleave position {pos}")


for _pos in range(MAX_TARGETS):
    _a = _target_attribute(_pos)
    Region.sysfs_attributes[_a.name] = _a


class PmemRegion(CXLDevice):
    """pmem_regionN: hands a committed PMEM region to libnvdimm."""
    devtype = "cxl_pmem_region"
    cxl_id = CXL_DEVICE_PMEM_REGION

    def __init__(self, kernel, region: Region):
        super().__init__(kernel, f"pmem_region{region.id}", region)
        self.region = region


class CXLRegionDriver(CXLDriver):
    """cxl_region: binds committed regions and creates their DAX or PMEM bridge."""

    name = "cxl_region"
    module = "cxl_core"
    id = CXL_DEVICE_REGION

    def probe(self, region: Region) -> None:
        if region.state != State.COMMIT:
            raise region.dbg(f"config state: {int(region.state)}", errno.ENXIO)
        backend = self.kernel.cxl.region_backends.get(region.mode)
        if backend is None:
            raise region.dbg(f"unsupported region mode: {region.mode}", errno.ENXIO)
        backend(region)


class CXLPmemRegionDriver(CXLDriver):
    name = "cxl_pmem_region"
    module = "cxl_pmem"
    id = CXL_DEVICE_PMEM_REGION
    suppress_bind_attrs = True

    def probe(self, dev: PmemRegion) -> None:
        bridge = next((d for d in self.kernel.buses["cxl"].devices.values()
                       if d.devtype == "cxl_nvdimm_bridge"), None)
        if bridge is None or bridge.driver is None:
            raise dev.dbg("no nvdimm bridge", errno.ENODEV)


def add_pmem_region(region: Region) -> None:
    region.devm_add_child(PmemRegion(region.kernel, region))


class Regions:
    """Region bookkeeping shared by the stores: HPA space, decoder reservation, commit order."""

    def __init__(self, cxl: "CXLCore"):
        self.cxl = cxl
        self.kernel = cxl.kernel

    def all(self) -> Iterator[Region]:
        for dev in list(self.kernel.buses["cxl"].devices.values()):
            if isinstance(dev, Region):
                yield dev

    def of_root(self, cxlrd: RootDecoder) -> list[Region]:
        return [r for r in self.all() if r.cxlrd is cxlrd]

    # ---- create / delete (root decoder attributes) ---------------------------------------------
    def create(self, cxlrd: RootDecoder, buf: WriteBuf, mode: str) -> Region:
        region_id = sscanf_prefix_int(buf, "region")
        ida = self.cxl.memregion_ida
        fresh = ida.alloc()
        if region_id != cxlrd.region_id:
            ida.free(fresh)
            raise KernelError(errno.EBUSY)
        cxlrd.region_id = fresh
        region = Region(self.kernel, region_id, cxlrd, mode)
        self.kernel.device_add(region)
        region.log("debug", f"{cxlrd.name}: created {region.name}")
        return region

    def delete(self, cxlrd: RootDecoder, buf: WriteBuf) -> None:
        region = next((r for r in self.of_root(cxlrd) if sysfs_streq(buf, r.name)), None)
        if region is None:
            raise KernelError(errno.ENODEV)
        self.unregister(region)

    def unregister(self, region: Region) -> None:
        self.kernel.device_unregister(region)

    def release(self, region: Region) -> None:
        """Unregistration: detach every target, free the HPA, give the id back."""
        for pos in range(MAX_TARGETS):
            if region.targets[pos] is not None:
                self._detach(region, pos, hw_reset=not region.is_locked)
        region.hpa_start, region.hpa_size = None, 0
        cxlrd, ida = region.cxlrd, self.cxl.memregion_ida
        if not cxlrd.dead and region.id < cxlrd.region_id:
            ida.free(cxlrd.region_id)          # keep ids small: the lower id goes back in the cache
            cxlrd.region_id = region.id
        else:
            ida.free(region.id)

    # ---- HPA --------------------------------------------------------------------------------------
    def alloc_hpa(self, region: Region, size: int) -> None:
        if region.hpa_start is not None and region.hpa_size == size:
            return
        if region.hpa_start is not None:
            raise KernelError(errno.EBUSY)
        if region.state >= State.INTERLEAVE_ACTIVE:
            raise KernelError(errno.EBUSY)
        if not region.ways or not region.granularity or (region.mode == "pmem" and region.uuid is None):
            raise KernelError(errno.ENXIO)
        if size % (SZ_256M * region.ways):
            raise KernelError(errno.EINVAL)
        start = self._free_range(region.cxlrd, size, region)
        if start is None:
            raise region.dbg(f"HPA allocation error (-34) for size:{hex_prefixed(size)} in "
                             f"{region.cxlrd.name}", errno.ERANGE)
        region.hpa_start, region.hpa_size = start, size
        region.state = State.INTERLEAVE_ACTIVE

    def _free_range(self, cxlrd: RootDecoder, size: int, me: Region) -> int | None:
        busy = sorted((r.hpa_start, r.hpa_end) for r in self.of_root(cxlrd)
                      if r is not me and r.hpa_start is not None)
        cand = (cxlrd.start + SZ_256M - 1) // SZ_256M * SZ_256M
        while cand + size <= cxlrd.start + cxlrd.size:
            clash = next(((s, e) for s, e in busy if s < cand + size and cand < e), None)
            if clash is None:
                return cand
            cand = (clash[1] + SZ_256M - 1) // SZ_256M * SZ_256M
        return None

    def free_hpa(self, region: Region) -> None:
        if region.hpa_start is None:
            return
        if region.state >= State.ACTIVE:
            raise KernelError(errno.EBUSY)
        region.hpa_start, region.hpa_size = None, 0
        region.state = State.IDLE

    # ---- targets ------------------------------------------------------------------------------------
    def endpoint_path(self, cxled: EndpointDecoder) -> list["CXLPort"]:
        """Switch and host-bridge ports between the endpoint and root0, bottom up."""
        ports = []
        port = cxled.port.parent_port
        while port is not None and not port.is_root():
            ports.append(port)
            port = port.parent_port
        return ports

    def host_bridge_dport(self, cxled: EndpointDecoder) -> "Dport | None":
        """The dport of root0 the endpoint sits below."""
        port = cxled.port
        while port.parent_port is not None and not port.parent_port.is_root():
            port = port.parent_port
        return port.parent_dport

    def calc_hb(self, cxlrd: RootDecoder, pos: int) -> "Dport":
        """Which host bridge serves interleave position ``pos`` (modulo or XOR arithmetic)."""
        if not cxlrd.xor or cxlrd.ways == 1:
            return cxlrd.targets[pos % cxlrd.ways]
        return cxlrd.targets[xor_hb_index(cxlrd, pos)]

    def attach(self, region: Region, cxled: EndpointDecoder, pos: int) -> None:
        """cxl_region_attach(): the checks, in order, then the per-port reservations."""
        if cxled.mode == "none" or cxled.dead:
            raise region.dbg(f"{cxled.name}: no partition selected", errno.ENODEV)
        if cxled.mode != region.mode:
            raise region.dbg(f"{cxled.name} mode: {cxled.mode} mismatch: {region.mode}", errno.EINVAL)
        if region.state > State.INTERLEAVE_ACTIVE:
            raise region.dbg("region already active", errno.EBUSY)
        if region.state < State.INTERLEAVE_ACTIVE:
            raise region.dbg("size must be set before targets", errno.ENXIO)
        if len(region.attached()) >= region.ways:
            raise region.dbg("interleave config full", errno.EINVAL)
        hb = self.host_bridge_dport(cxled)
        if hb is None or hb.port is not region.cxlrd.port:
            raise region.dbg(f"{cxled.name}: not reachable from {region.cxlrd.name}", errno.ENXIO)
        if cxled.target_type != region.cxlrd.target_type:
            raise region.dbg(f"{cxled.name}: target type mismatch", errno.ENXIO)
        if cxled.dpa_start is None:
            raise region.dbg(f"{cxled.name}: missing DPA allocation", errno.ENXIO)
        if cxled.dpa_size * region.ways != region.hpa_size:
            raise region.dbg(f"{cxled.name}: invalid size {hex_prefixed(cxled.dpa_size)} x ways "
                             f"{region.ways} != {hex_prefixed(region.hpa_size)}", errno.EINVAL)
        occupant = region.targets[pos]
        if occupant is cxled:
            return
        if occupant is not None:
            raise region.dbg(f"position {pos} already assigned to {occupant.name}", errno.EBUSY)
        for other in region.attached():
            if other.memdev is cxled.memdev:
                raise region.dbg(f"{cxled.memdev.name} already attached at position {other.pos}",
                                 errno.EBUSY)
        if self.calc_hb(region.cxlrd, pos) is not hb:
            raise region.dbg(f"{cxled.name}: position {pos} requires a different host bridge",
                             errno.ENXIO)
        if cxled.region is not None:
            raise region.dbg(f"{cxled.name} already attached to {cxled.region.name}", errno.EBUSY)
        self._attach_ports(region, cxled)
        region.targets[pos] = cxled
        cxled.region = region
        cxled.pos = pos
        self._mirror(region, cxled)
        if len(region.attached()) == region.ways:
            self.setup_targets(region)        # failure leaves the target recorded
            region.state = State.ACTIVE

    def _mirror(self, region: Region, cxled: EndpointDecoder) -> None:
        cxled.ways = region.ways
        cxled.granularity = region.granularity
        cxled.start = region.hpa_start
        cxled.size = region.hpa_size

    def _attach_ports(self, region: Region, cxled: EndpointDecoder) -> None:
        """cxl_port_attach_region() on every port up the path; undone as a whole on failure."""
        added: list[PortRef] = []
        try:
            child = cxled.port
            for port in self.endpoint_path(cxled):
                ref = region.refs.get(port)
                if ref is None:
                    decoder = self._reserve_decoder(region, port)
                    ref = PortRef(port, decoder)
                    region.refs[port] = ref
                    decoder.region = region
                    added.append(ref)
                dports = {self._dport_below(port, e) for e in ref.endpoints}
                dports.add(child.parent_dport)
                if len(dports) > ref.decoder.nr_targets:
                    raise region.dbg(f"{port.name}: too many targets for {ref.decoder.name}", errno.ENXIO)
                ref.endpoints.append(cxled)
                child = port
        except KernelError:
            for ref in region.refs.values():
                if cxled in ref.endpoints:
                    ref.endpoints.remove(cxled)
            for ref in added:
                ref.decoder.region = None
                del region.refs[ref.port]
            raise

    def _dport_below(self, port: "CXLPort", cxled: EndpointDecoder) -> "Dport":
        child = cxled.port
        while child.parent_port is not port:
            child = child.parent_port
        return child.parent_dport

    def _reserve_decoder(self, region: Region, port: "CXLPort") -> SwitchDecoder:
        """Only the next decoder to commit is eligible, with no hole below it."""
        if region.auto:
            for d in port.decoders:
                if d.committed and d.region is None and d.start == region.hpa_start and \
                        d.size == region.hpa_size:
                    return d
        idx = port.commit_end + 1
        if idx >= len(port.decoders):
            raise region.dbg(f"{port.name}: no decoder available", errno.EBUSY)
        decoder = port.decoders[idx]
        if decoder.region is not None or not all(d.committed for d in port.decoders[:idx]):
            raise region.dbg(f"{port.name}: no decoder available", errno.EBUSY)
        for ref_region in {d.region for d in port.decoders if d.region is not None}:
            if ref_region.hpa_start is not None and ref_region.hpa_start > region.hpa_start:
                raise region.dbg(f"{port.name}: HPA order violation {ref_region.name} vs "
                                 f"{region.name}", errno.EBUSY)
        return decoder

    def setup_targets(self, region: Region) -> None:
        """cxl_region_setup_targets(): program ways, granularity and target lists per port."""
        for port, ref in self._refs_top_down(region):
            dports: list[Dport] = []
            for e in sorted(ref.endpoints, key=lambda e: e.pos):
                d = self._dport_below(port, e)
                if d not in dports:
                    dports.append(d)
            ways = len(dports)
            if not is_pow2(ways) or ways > 8:
                raise region.dbg(f"{port.name}: invalid target count {ways}", errno.EINVAL)
            if ways > ref.decoder.nr_targets:
                raise region.dbg(f"{port.name}: too many targets", errno.ENXIO)
            # position p reaches target (p / ways_above) % ways: check every endpoint agrees
            above = self._ways_above(region, port)
            granularity = region.granularity * above
            order: list[Dport | None] = [None] * ways
            for e in ref.endpoints:
                idx = (e.pos // above) % ways
                d = self._dport_below(port, e)
                if order[idx] is None:
                    order[idx] = d
                elif order[idx] is not d:
                    raise region.dbg(f"{port.name}: {e.name} at position {e.pos} cannot be reached "
                                     f"through {d.dev.name}", errno.ENXIO)
            if any(o is None for o in order) or len(set(order)) != ways:
                raise region.dbg(f"{port.name}: inconsistent target order", errno.ENXIO)
            if ref.decoder.committed:       # firmware-programmed (auto region): must agree
                continue
            ref.decoder.ways = ways
            ref.decoder.granularity = granularity
            ref.decoder.targets = order
        for port, ref in region.refs.items():
            if not ref.decoder.committed:
                ref.decoder.start = region.hpa_start
                ref.decoder.size = region.hpa_size

    def _ways_above(self, region: Region, port: "CXLPort") -> int:
        """Product of the interleave ways of everything above ``port`` (root counts x3 as x1)."""
        cxlrd = region.cxlrd
        ways = cxlrd.ways
        p = port.parent_port
        while p is not None and not p.is_root():
            ref = region.refs.get(p)
            if ref is not None:
                ways *= len({self._dport_below(p, e) for e in ref.endpoints})
            p = p.parent_port
        return ways

    def _refs_top_down(self, region: Region) -> list[tuple["CXLPort", PortRef]]:
        return sorted(region.refs.items(), key=lambda item: item[0].depth)

    def detach_position(self, region: Region, pos: int) -> None:
        if region.targets[pos] is None:
            return
        self._detach(region, pos, hw_reset=not region.is_locked)

    def detach_decoder(self, cxled: EndpointDecoder) -> None:
        """An endpoint decoder is going away (memdev disabled): its region loses the target."""
        region = cxled.region
        if region is not None and not region.dead:
            self._detach(region, cxled.pos, hw_reset=not region.is_locked)

    def _detach(self, region: Region, pos: int, hw_reset: bool) -> None:
        cxled = region.targets[pos]
        if cxled is None:
            return
        if region.state >= State.COMMIT:
            self._decode_reset(region, hw_reset)
            region.state = State.ACTIVE
        if region.driver is not None:
            self.kernel.release_driver(region)
        if region.state >= State.ACTIVE:
            # cxl_region_teardown_targets(): every switch decoder programmed for the region,
            # including those of ports this target was the last one below
            for ref in region.refs.values():
                if not ref.decoder.committed:
                    ref.decoder.reset_hpa()
            region.state = State.INTERLEAVE_ACTIVE
        for port in self.endpoint_path(cxled):
            ref = region.refs.get(port)
            if ref is None:
                continue
            if cxled in ref.endpoints:
                ref.endpoints.remove(cxled)
            if not ref.endpoints:
                ref.decoder.region = None
                del region.refs[port]
        region.targets[pos] = None
        region.touch()
        cxled.region = None
        cxled.pos = -1
        cxled.reset_hpa()

    # ---- commit -------------------------------------------------------------------------------
    def region_decoders_bottom_up(self, region: Region) -> list[tuple["CXLPort", object]]:
        """Per target: the endpoint decoder, then each switch / host-bridge decoder above it."""
        seen, out = set(), []
        for cxled in region.attached():
            for port, decoder in [(cxled.port, cxled)] + \
                    [(p, region.refs[p].decoder) for p in self.endpoint_path(cxled) if p in region.refs]:
                if decoder not in seen:
                    seen.add(decoder)
                    out.append((port, decoder))
        return out

    def commit(self, region: Region) -> None:
        if region.state >= State.COMMIT:
            return
        if region.state < State.ACTIVE:
            raise region.dbg("region not fully configured", errno.ENXIO)
        for cxled in region.attached():
            if cxled.memdev.sanitizing:
                raise region.dbg(f"{cxled.memdev.name}: sanitize in progress", errno.EBUSY)
        done = []
        for port, decoder in self.region_decoders_bottom_up(region):
            if decoder.committed:
                continue
            if decoder.index != port.commit_end + 1:
                for p, d in reversed(done):
                    self._reset_decoder(p, d)
                raise region.dbg(f"{decoder.name}: out of order commit, expected "
                                 f"decoder{port.port_id}.{port.commit_end + 1}", errno.EBUSY)
            decoder.committed = True
            port.commit_end += 1
            done.append((port, decoder))
        region.state = State.COMMIT

    def decommit(self, region: Region) -> None:
        if region.is_locked:
            raise region.dbg("region is locked", errno.EPERM)
        if region.driver is not None:
            self.kernel.release_driver(region)
        if region.state < State.COMMIT:
            return
        self._decode_reset(region, hw_reset=True)
        region.state = State.ACTIVE

    def _decode_reset(self, region: Region, hw_reset: bool) -> None:
        """cxl_region_decode_reset(): top-down; out-of-order resets leave commit_end alone."""
        if not hw_reset:
            return
        for port, decoder in reversed(self.region_decoders_bottom_up(region)):
            self._reset_decoder(port, decoder)

    def _reset_decoder(self, port: "CXLPort", decoder) -> None:
        if not decoder.committed:
            return
        decoder.committed = False
        if port.commit_end == decoder.index:
            # cxl_port_commit_reap(): also step over decoders already reset out of order
            port.commit_end -= 1
            while port.commit_end >= 0 and not port.decoders[port.commit_end].committed:
                port.commit_end -= 1



def xor_hb_index(cxlrd: RootDecoder, pos: int) -> int:
    """cxl_hb_xor(): host-bridge index from XOR of address bits (CXIMS maps of cxl_test)."""
    ways = cxlrd.ways
    if ways % 3 == 0:
        return pos % ways
    eig = ways.bit_length() - 1
    hpa = cxlrd.start + pos * cxlrd.granularity
    idx = 0
    for i in range(eig):
        idx |= (bin(hpa & XORMAPS[i]).count("1") & 1) << i
    return idx
