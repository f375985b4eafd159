"""A /proc/iomem view of the model: CXL windows, regions, driver reservations, System RAM.

/proc is not part of the mount, so `cxlfs iomem MNT` prints it (kernel-abi.md §12.2 names
the sysram proposal's resource "System RAM (CXL)"; kmem's is "System RAM (kmem)").
"""
from __future__ import annotations


def resources(kernel) -> list[tuple[int, int, int, str]]:
    """(start, end, rank, name): rank orders containers before what they contain."""
    out = []
    cxl = getattr(kernel, "cxl", None)
    if cxl is not None and cxl.root is not None:
        for rd in cxl.root.decoders:
            out.append((rd.start, rd.end, 0, f"CXL Window {rd.index}"))
            for region in cxl.regions.of_root(rd):
                if region.hpa_start is not None:
                    out.append((region.hpa_start, region.hpa_end - 1, 1, region.name))
    mm = kernel.mm
    out += [(r.start, r.end, 2, r.name) for r in mm.iomem]
    out += [(r.start, r.end, 3, r.name) for r in mm.system_ram]
    return out


def iomem_text(kernel) -> str:
    lines: list[str] = []
    stack: list[int] = []          # ends of the enclosing resources
    for start, end, _, name in sorted(resources(kernel), key=lambda r: (r[0], -r[1], r[2])):
        while stack and start > stack[-1]:
            stack.pop()
        lines.append(f"{'  ' * len(stack)}{start:08x}-{end:08x} : {name}")
        stack.append(end)
    return "\n".join(lines) + "\n"
