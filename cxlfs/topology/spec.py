"""Topology files: what the platform looks like before any driver probes.

A topology is TOML.  Devices name their parent, so any tree can be written down; the
embedded default (``cxl_test.toml``) is the kernel's cxl_test.  ``load()`` validates and
every error names the field that is wrong: ``memdev[2].attach: unknown port 'x'``.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGTP]?)(i?B)?\s*$", re.I)
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
SZ_256M = 256 << 20


class TopologyError(ValueError):
    pass


@dataclass
class NodeSpec:
    id: int
    memory: int
    cpus: int = 1


@dataclass
class HostBridgeSpec:
    name: str
    uid: int
    rch: bool = False           # CXL 1.1 restricted host bridge: an RCD sits right below it
    nr_decoders: int = 8
    nr_targets: int = 2


@dataclass
class RootPortSpec:
    name: str
    host_bridge: str
    id: int


@dataclass
class SwitchSpec:
    name: str
    parent: str                  # a root port or a downstream port of another switch
    dports: list[tuple[str, int]] = field(default_factory=list)
    nr_decoders: int = 8
    nr_targets: int = 2


@dataclass
class MemdevSpec:
    name: str
    attach: str                  # the root port / switch dport / RCH host bridge above it
    ram: int = 1 << 30
    pmem: int = 1 << 30
    numa_node: int = -1
    serial: int = 0
    nr_decoders: int = 8
    rcd: bool = False


@dataclass
class WindowSpec:
    targets: list[str]           # host bridge names, in interleave order
    size: int
    types: tuple[str, ...]       # ("ram",) / ("pmem",) / both
    granularity: int = 4096
    qos_class: int = 42
    xor: bool = False
    locked: bool = False
    start: int | None = None
    node: int | None = None


@dataclass
class AutoRegionSpec:
    window: int
    memdevs: list[str]
    size: int
    granularity: int = 4096


@dataclass
class Topology:
    name: str = "custom"
    provider: str = "cxl_test"        # cxl_test (root under cxl_acpi.0) or acpi (ACPI0017:00)
    block_size: int = 128 << 20
    window_base: int = 0xF010000000
    auto_online_blocks: str = "offline"
    memmap_on_memory: bool = True
    nodes: list[NodeSpec] = field(default_factory=list)
    host_bridges: list[HostBridgeSpec] = field(default_factory=list)
    root_ports: list[RootPortSpec] = field(default_factory=list)
    switches: list[SwitchSpec] = field(default_factory=list)
    memdevs: list[MemdevSpec] = field(default_factory=list)
    windows: list[WindowSpec] = field(default_factory=list)
    auto_regions: list[AutoRegionSpec] = field(default_factory=list)

    # -- lookups used by the builder ------------------------------------------------------------
    def host_bridge(self, name: str) -> HostBridgeSpec:
        return next(h for h in self.host_bridges if h.name == name)

    def window_nodes(self) -> list[int]:
        """CXL windows get their own memory-only NUMA node after the DRAM nodes (one per CFMWS)."""
        first = max((n.id for n in self.nodes), default=-1) + 1
        return [w.node if w.node is not None else first + i for i, w in enumerate(self.windows)]


def parse_size(value, where: str) -> int:
    if isinstance(value, bool):
        raise TopologyError(f"{where}: expected a size, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise TopologyError(f"{where}: negative size")
        return value
    if isinstance(value, str):
        if value.lower().startswith("0x"):
            try:
                return int(value, 16)
            except ValueError:
                pass
        m = SIZE_RE.match(value)
        if m:
            return int(m.group(1)) * UNITS[m.group(2).upper()]
    raise TopologyError(f"{where}: cannot parse size {value!r} (use e.g. 256M, 1G, 0x40000000)")


def _int(value, where: str, lo: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TopologyError(f"{where}: expected an integer, got {value!r}")
    if lo is not None and value < lo:
        raise TopologyError(f"{where}: must be >= {lo}")
    return value


def _bool(value, where: str) -> bool:
    if not isinstance(value, bool):
        raise TopologyError(f"{where}: expected true or false, got {value!r}")
    return value


def _str(value, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise TopologyError(f"{where}: expected a non-empty string, got {value!r}")
    return value


class _Table:
    """Reads one TOML table, remembering which keys were used so unknown ones are reported."""

    def __init__(self, data, where: str):
        if not isinstance(data, dict):
            raise TopologyError(f"{where}: expected a table")
        self.data, self.where, self.used = data, where, set()

    def get(self, key, default=None, *, required=False):
        self.used.add(key)
        if key not in self.data:
            if required:
                raise TopologyError(f"{self.where}.{key}: missing")
            return default
        return self.data[key]

    def at(self, key) -> str:
        return f"{self.where}.{key}"

    def done(self) -> None:
        extra = sorted(set(self.data) - self.used)
        if extra:
            raise TopologyError(f"{self.where}.{extra[0]}: unknown field")


def from_dict(data: dict) -> Topology:
    root = _Table(data, "topology")
    t = Topology()
    t.name = _str(root.get("name", "custom"), root.at("name"))
    t.provider = root.get("provider", "cxl_test")
    if t.provider not in ("cxl_test", "acpi"):
        raise TopologyError(f"topology.provider: must be 'cxl_test' or 'acpi', got {t.provider!r}")
    t.block_size = parse_size(root.get("block_size", "128M"), root.at("block_size"))
    if t.block_size < (128 << 20) or t.block_size & (t.block_size - 1):
        raise TopologyError("topology.block_size: must be a power of two >= 128M")
    t.window_base = parse_size(root.get("window_base", 0xF010000000), root.at("window_base"))
    t.auto_online_blocks = root.get("auto_online_blocks", "offline")
    if t.auto_online_blocks not in ("offline", "online", "online_kernel", "online_movable"):
        raise TopologyError("topology.auto_online_blocks: must be offline, online, online_kernel "
                            "or online_movable")
    t.memmap_on_memory = _bool(root.get("memmap_on_memory", True), root.at("memmap_on_memory"))

    for i, raw in enumerate(root.get("node", [])):
        tb = _Table(raw, f"node[{i}]")
        t.nodes.append(NodeSpec(_int(tb.get("id", i), tb.at("id"), 0),
                                parse_size(tb.get("memory", required=True), tb.at("memory")),
                                _int(tb.get("cpus", 1), tb.at("cpus"), 0)))
        tb.done()
    if not t.nodes:
        t.nodes.append(NodeSpec(0, 8 << 30, 2))

    for i, raw in enumerate(root.get("host_bridge", [])):
        tb = _Table(raw, f"host_bridge[{i}]")
        t.host_bridges.append(HostBridgeSpec(
            _str(tb.get("name", f"cxl_host_bridge.{i}"), tb.at("name")),
            _int(tb.get("uid", i), tb.at("uid"), 0), _bool(tb.get("rch", False), tb.at("rch")),
            _int(tb.get("decoders", 8), tb.at("decoders"), 1),
            _int(tb.get("targets", 2), tb.at("targets"), 1)))
        tb.done()
    for i, raw in enumerate(root.get("root_port", [])):
        tb = _Table(raw, f"root_port[{i}]")
        t.root_ports.append(RootPortSpec(_str(tb.get("name", required=True), tb.at("name")),
                                         _str(tb.get("host_bridge", required=True), tb.at("host_bridge")),
                                         _int(tb.get("id", i), tb.at("id"), 0)))
        tb.done()
    for i, raw in enumerate(root.get("switch", [])):
        tb = _Table(raw, f"switch[{i}]")
        dports = []
        for j, d in enumerate(tb.get("dports", [])):
            dt = _Table(d, f"switch[{i}].dports[{j}]")
            dports.append((_str(dt.get("name", required=True), dt.at("name")),
                           _int(dt.get("id", j), dt.at("id"), 0)))
            dt.done()
        t.switches.append(SwitchSpec(_str(tb.get("name", required=True), tb.at("name")),
                                     _str(tb.get("parent", required=True), tb.at("parent")), dports,
                                     _int(tb.get("decoders", 8), tb.at("decoders"), 1),
                                     _int(tb.get("targets", 2), tb.at("targets"), 1)))
        tb.done()
    for i, raw in enumerate(root.get("memdev", [])):
        tb = _Table(raw, f"memdev[{i}]")
        m = MemdevSpec(_str(tb.get("name", f"cxl_mem.{i}"), tb.at("name")),
                       _str(tb.get("attach", required=True), tb.at("attach")),
                       parse_size(tb.get("ram", "1G"), tb.at("ram")),
                       parse_size(tb.get("pmem", "1G"), tb.at("pmem")),
                       _int(tb.get("numa_node", -1), tb.at("numa_node"), -1),
                       _int(tb.get("serial", i + 1), tb.at("serial"), 0),
                       _int(tb.get("decoders", 8), tb.at("decoders"), 1),
                       _bool(tb.get("rcd", False), tb.at("rcd")))
        for key, val in (("ram", m.ram), ("pmem", m.pmem)):
            if val % SZ_256M:
                raise TopologyError(f"memdev[{i}].{key}: must be a multiple of 256M")
        if m.ram + m.pmem == 0:
            raise TopologyError(f"memdev[{i}]: has neither ram nor pmem capacity")
        t.memdevs.append(m)
        tb.done()
    for i, raw in enumerate(root.get("window", [])):
        tb = _Table(raw, f"window[{i}]")
        types = tb.get("type", "ram")
        types = (types,) if isinstance(types, str) else tuple(types)
        if not types or any(x not in ("ram", "pmem") for x in types):
            raise TopologyError(f"window[{i}].type: must be 'ram', 'pmem' or both")
        targets = tb.get("targets", required=True)
        if not isinstance(targets, list) or not targets:
            raise TopologyError(f"window[{i}].targets: expected a list of host bridge names")
        w = WindowSpec([_str(x, f"window[{i}].targets") for x in targets],
                       parse_size(tb.get("size", required=True), tb.at("size")), types,
                       _int(tb.get("granularity", 4096), tb.at("granularity"), 256),
                       _int(tb.get("qos_class", 42), tb.at("qos_class"), -1),
                       _bool(tb.get("xor", False), tb.at("xor")),
                       _bool(tb.get("locked", False), tb.at("locked")),
                       None if tb.get("start") is None else parse_size(tb.get("start"), tb.at("start")),
                       None if tb.get("node") is None else _int(tb.get("node"), tb.at("node"), 0))
        if len(w.targets) not in (1, 2, 3, 4, 6, 8, 12, 16):
            raise TopologyError(f"window[{i}].targets: {len(w.targets)} host bridges is not a "
                                "CFMWS interleave (1,2,3,4,6,8,12,16)")
        if w.granularity & (w.granularity - 1) or not 256 <= w.granularity <= 16384:
            raise TopologyError(f"window[{i}].granularity: must be a power of two in 256..16384")
        if w.size == 0 or w.size % (SZ_256M * len(w.targets)):
            raise TopologyError(f"window[{i}].size: must be a non-zero multiple of 256M x ways")
        t.windows.append(w)
        tb.done()
    for i, raw in enumerate(root.get("auto_region", [])):
        tb = _Table(raw, f"auto_region[{i}]")
        t.auto_regions.append(AutoRegionSpec(
            _int(tb.get("window", required=True), tb.at("window"), 0),
            [_str(x, f"auto_region[{i}].memdevs") for x in tb.get("memdevs", required=True)],
            parse_size(tb.get("size", required=True), tb.at("size")),
            _int(tb.get("granularity", 4096), tb.at("granularity"), 256)))
        tb.done()
    for key in ("name", "provider", "block_size", "window_base", "auto_online_blocks",
                "memmap_on_memory", "node", "host_bridge", "root_port", "switch", "memdev",
                "window", "auto_region"):
        root.used.add(key)
    root.done()
    validate(t)
    return t


def validate(t: Topology) -> None:
    names: dict[str, str] = {}

    def claim(name: str, where: str) -> None:
        if name in names:
            raise TopologyError(f"{where}: name '{name}' already used by {names[name]}")
        names[name] = where

    for i, h in enumerate(t.host_bridges):
        claim(h.name, f"host_bridge[{i}].name")
    if len({h.uid for h in t.host_bridges}) != len(t.host_bridges):
        raise TopologyError("host_bridge: uids must be unique")
    ports_of: dict[str, str] = {}       # dport-ish name -> kind
    for i, rp in enumerate(t.root_ports):
        claim(rp.name, f"root_port[{i}].name")
        if rp.host_bridge not in {h.name for h in t.host_bridges}:
            raise TopologyError(f"root_port[{i}].host_bridge: unknown host bridge '{rp.host_bridge}'")
        if t.host_bridge(rp.host_bridge).rch:
            raise TopologyError(f"root_port[{i}].host_bridge: '{rp.host_bridge}' is an RCH (no root ports)")
        ports_of[rp.name] = "root_port"
    for i, sw in enumerate(t.switches):
        claim(sw.name, f"switch[{i}].name")
        for j, (dname, _) in enumerate(sw.dports):
            claim(dname, f"switch[{i}].dports[{j}].name")
    for i, sw in enumerate(t.switches):
        if sw.parent not in ports_of and sw.parent not in {d for s in t.switches for d, _ in s.dports}:
            raise TopologyError(f"switch[{i}].parent: unknown root port or switch dport '{sw.parent}'")
        if not sw.dports:
            raise TopologyError(f"switch[{i}].dports: a switch needs at least one downstream port")
    for s in t.switches:
        for d, _ in s.dports:
            ports_of[d] = "switch_dport"
    used: set[str] = set()
    for i, m in enumerate(t.memdevs):
        claim(m.name, f"memdev[{i}].name")
        rch = {h.name for h in t.host_bridges if h.rch}
        if m.attach in rch:
            m.rcd = True
            if m.pmem:
                raise TopologyError(f"memdev[{i}].pmem: an RCD below an RCH has no pmem partition here")
        elif m.attach not in ports_of:
            raise TopologyError(f"memdev[{i}].attach: unknown root port, switch dport or RCH '{m.attach}'")
        if m.attach in used:
            raise TopologyError(f"memdev[{i}].attach: '{m.attach}' already has a device below it")
        used.add(m.attach)
    hb_names = {h.name for h in t.host_bridges}
    for i, w in enumerate(t.windows):
        for name in w.targets:
            if name not in hb_names:
                raise TopologyError(f"window[{i}].targets: unknown host bridge '{name}'")
        if len(set(w.targets)) != len(w.targets):
            raise TopologyError(f"window[{i}].targets: a host bridge appears twice")
    for i, a in enumerate(t.auto_regions):
        if a.window >= len(t.windows):
            raise TopologyError(f"auto_region[{i}].window: no window {a.window}")
        for name in a.memdevs:
            if name not in {m.name for m in t.memdevs}:
                raise TopologyError(f"auto_region[{i}].memdevs: unknown memdev '{name}'")
        ways = len(a.memdevs)
        if a.size % (SZ_256M * ways):
            raise TopologyError(f"auto_region[{i}].size: must be a multiple of 256M x {ways}")


def load(source: str | None = None) -> Topology:
    """A topology by name (an embedded file) or by path; None is the cxl_test default."""
    if source is None:
        source = "cxl_test"
    path = Path(source)
    if path.suffix == ".toml" or path.is_file():
        try:
            text = path.read_text()
        except OSError as e:
            raise TopologyError(f"{source}: {e.strerror}") from None
    else:
        try:
            text = resources.files("cxlfs.topology").joinpath(f"{source}.toml").read_text()
        except FileNotFoundError:
            raise TopologyError(f"unknown topology '{source}' (embedded: {', '.join(embedded())})") from None
    return from_dict(_load_data(source, text))


def _load_data(source: str, text: str, depth: int = 0) -> dict:
    """TOML with ``extends = "other"``: the other topology's tables, these ones replacing them."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise TopologyError(f"{source}: {e}") from None
    base_name = data.pop("extends", None)
    if base_name is None:
        return data
    if depth > 4:
        raise TopologyError(f"{source}.extends: too deep")
    try:
        base_text = resources.files("cxlfs.topology").joinpath(f"{base_name}.toml").read_text()
    except FileNotFoundError:
        base_path = Path(source).parent / base_name
        if not base_path.is_file():
            raise TopologyError(f"{source}.extends: unknown topology '{base_name}'") from None
        base_text = base_path.read_text()
    base = _load_data(base_name, base_text, depth + 1)
    base.update(data)
    return base


def embedded() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("cxlfs.topology").iterdir()
                  if p.name.endswith(".toml"))
