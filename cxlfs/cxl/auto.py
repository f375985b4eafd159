"""Regions the platform firmware programmed before boot (cxl_test's mem0 + mem4 RAM region).

At first enumeration the ports on the way to those memdevs come up with a committed
decoder, as cxl_test's mock HDM registers do; endpoint probe then finds the committed
endpoint decoder and assembles the region around it (cxl_add_to_region), commits it
and binds it, so it is online without any user action.  A decoder that was reset since
stays reset: the programming is consumed once.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .decoder import EndpointDecoder

if TYPE_CHECKING:
    from .core import CXLCore
    from .port import CXLPort

# cxl_test's CXIMS for XOR windows (interleave_arithmetic=1)
XORMAPS = (0x404100, 0x808200)


def _auto_layout(cxl: "CXLCore"):
    """(spec, window start, [memdev platform device per position]) for each auto region."""
    from .acpi import window_starts
    topo = cxl.topo
    starts = window_starts(topo)
    used: dict[int, int] = {}
    out = []
    for spec in topo.auto_regions:
        offset = used.get(spec.window, 0)
        used[spec.window] = offset + spec.size
        pdevs = [cxl.kernel.platform_device(name) for name in spec.memdevs]
        out.append((spec, starts[spec.window] + offset, pdevs))
    return out


def _below(dev, ancestor) -> bool:
    while dev is not None:
        if dev is ancestor:
            return True
        dev = getattr(dev, "parent", None)
    return False


def program_port(cxl: "CXLCore", port: "CXLPort") -> None:
    """Set a switch / host-bridge port's first free decoder as the firmware left it."""
    for spec, start, pdevs in _auto_layout(cxl):
        key = ("port", port.uport.name, start)
        if key in cxl.auto_programmed:
            continue
        members = [(pos, p) for pos, p in enumerate(pdevs) if _below(p, port.uport)]
        if not members:
            continue
        cxl.auto_programmed.add(key)
        idx = port.commit_end + 1
        if idx >= len(port.decoders):
            continue
        decoder = port.decoders[idx]
        # the dport each member routes through, in interleave order
        above = _ways_above_port(cxl, port, spec, pdevs)
        distinct = len({_child_towards(p, port.uport) for _, p in members})
        order: dict[int, object] = {}
        for pos, p in members:
            order.setdefault((pos // above) % distinct, _child_towards(p, port.uport))
        targets = [port.dport_for(order[i]) for i in sorted(order)]
        decoder.ways = len(targets)
        decoder.granularity = spec.granularity * above
        decoder.targets = targets
        decoder.start = start
        decoder.size = spec.size
        decoder.committed = True
        port.commit_end = idx


def _child_towards(dev, ancestor):
    """The dport device directly below ``ancestor`` on the way up from ``dev``."""
    prev = dev
    while dev is not None and dev.parent is not ancestor:
        prev = dev
        dev = dev.parent
    return dev if dev is not None else prev


def _ways_above_port(cxl: "CXLCore", port: "CXLPort", spec, pdevs) -> int:
    ways = 1
    for ancestor in _uport_chain_above(port):
        ways *= len({_child_towards(p, ancestor) for p in pdevs if _below(p, ancestor)}) or 1
    root_ways = len(cxl.topo.windows[spec.window].targets)
    return ways * root_ways


def _uport_chain_above(port: "CXLPort"):
    p = port.parent_port
    while p is not None and not p.is_root():
        yield p.uport
        p = p.parent_port


def program_endpoint(cxl: "CXLCore", endpoint: "CXLPort") -> list[tuple[EndpointDecoder, int]]:
    """Endpoint decoders the firmware programmed, with their interleave position."""
    memdev = endpoint.memdev
    pdev = memdev.parent
    out = []
    for spec, start, pdevs in _auto_layout(cxl):
        if pdev not in pdevs:
            continue
        key = ("ep", pdev.name, start)
        if key in cxl.auto_programmed:
            continue
        cxl.auto_programmed.add(key)
        pos = pdevs.index(pdev)
        idx = endpoint.commit_end + 1
        if idx >= len(endpoint.decoders):
            continue
        mode = cxl.topo.windows[spec.window].types[0]
        part = memdev.partition(mode)
        if part is None:
            continue
        cxled = endpoint.decoders[idx]
        ways = len(pdevs)
        cxled.mode = mode
        cxled.dpa_start = max(part.start, max((d.dpa_start + d.dpa_size for d in endpoint.decoders
                                               if d.dpa_start is not None), default=0))
        cxled.dpa_size = spec.size // ways
        endpoint.hdm_end = idx
        cxled.ways = ways
        cxled.granularity = spec.granularity
        cxled.start = start
        cxled.size = spec.size
        cxled.committed = True
        endpoint.commit_end = idx
        out.append((cxled, pos))
    return out


def discover_endpoint(cxl: "CXLCore", endpoint: "CXLPort") -> None:
    """cxl_add_to_region(): find or construct the region of each programmed endpoint decoder."""
    from .region import Region, State
    kernel = cxl.kernel
    regions = cxl.regions
    for cxled, pos in program_endpoint(cxl, endpoint):
        cxlrd = next((rd for rd in cxl.root.decoders
                      if rd.start <= cxled.start and cxled.start + cxled.size <= rd.start + rd.size), None)
        if cxlrd is None:
            endpoint.log("err", f"{cxled.name}: no CXL window for range {cxled.start:#x}")
            continue
        region = next((r for r in regions.of_root(cxlrd)
                       if r.hpa_start == cxled.start and r.hpa_size == cxled.size), None)
        if region is None:
            region_id = cxlrd.region_id
            cxlrd.region_id = cxl.memregion_ida.alloc()
            region = Region(kernel, region_id, cxlrd, cxled.mode)
            region.auto = True
            region.ways = cxled.ways
            region.granularity = cxled.granularity
            region.hpa_start, region.hpa_size = cxled.start, cxled.size
            region.state = State.INTERLEAVE_ACTIVE
            kernel.device_add(region)
        try:
            regions.attach(region, cxled, pos)
        except Exception as e:   # a broken firmware region stays half-assembled, as in the kernel
            region.log("err", f"{cxled.name}: failed to attach to {region.name}: {e}")
            continue
        if region.state == State.ACTIVE:
            region.state = State.COMMIT
            region.log("info", f"auto-assembled from {', '.join(t.name for t in region.attached())}")
            kernel.defer(lambda r=region: kernel.device_attach(r))

