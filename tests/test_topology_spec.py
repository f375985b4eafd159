"""Topology TOML validation (cxlfs/topology/spec.py): every error names the bad field."""
from __future__ import annotations

import textwrap

import pytest

from cxlfs.topology.spec import TopologyError, embedded, load, parse_size

# the smallest useful topology: one host bridge, one root port, one memdev, one window
BASE = """
name = "tiny"
[[host_bridge]]
name = "hb.0"
[[root_port]]
name = "rp.0"
host_bridge = "hb.0"
[[memdev]]
name = "cxl_mem.0"
attach = "rp.0"
[[window]]
targets = ["hb.0"]
size = "1G"
"""


def load_text(tmp_path, text: str):
    path = tmp_path / "t.toml"
    path.write_text(textwrap.dedent(text))
    return load(str(path))


def error_of(tmp_path, text: str) -> str:
    with pytest.raises(TopologyError) as excinfo:
        load_text(tmp_path, text)
    return str(excinfo.value)


def test_base_snippet_is_valid(tmp_path):
    t = load_text(tmp_path, BASE)
    assert t.name == "tiny"
    assert [m.name for m in t.memdevs] == ["cxl_mem.0"]
    assert t.memdevs[0].ram == 1 << 30 and t.memdevs[0].pmem == 1 << 30
    assert t.windows[0].types == ("ram",)


def test_embedded_topologies_load():
    assert "cxl_test" in embedded()
    for name in embedded():
        load(name)


@pytest.mark.parametrize("snippet,field", [
    # unknown keys
    ('bogus = 1', "topology.bogus: unknown field"),
    ('[[host_bridge]]\nname = "hb.1"\ncolour = "red"', "host_bridge[1].colour: unknown field"),
    ('[[memdev]]\nname = "m1"\nattach = "rp.0"\nsize = "1G"', "memdev[1].size: unknown field"),
    # wrong types
    ('[[host_bridge]]\nname = "hb.1"\nuid = "one"', "host_bridge[1].uid: expected an integer"),
    ('[[host_bridge]]\nname = "hb.1"\nuid = true', "host_bridge[1].uid: expected an integer"),
    ('[[host_bridge]]\nname = ""', "host_bridge[1].name: expected a non-empty string"),
    ('[[root_port]]\nname = "rp.1"', "root_port[1].host_bridge: missing"),
    ('[[memdev]]\nname = "m1"', "memdev[1].attach: missing"),
    ('[[window]]\nsize = "1G"', "window[1].targets: missing"),
    ('[[window]]\ntargets = ["hb.0"]', "window[1].size: missing"),
    ('[[auto_region]]\nmemdevs = ["cxl_mem.0"]\nsize = "256M"', "auto_region[0].window: missing"),
    # sizes
    ('[[memdev]]\nname = "m1"\nattach = "sw.x"\nram = "1.5G"', "memdev[1].ram: cannot parse size"),
    ('[[memdev]]\nname = "m1"\nattach = "rp.0"\nram = "100M"', "memdev[1].ram: must be a multiple of 256M"),
    ('[[memdev]]\nname = "m1"\nattach = "rp.0"\npmem = -1', "memdev[1].pmem: negative size"),
    ('[[memdev]]\nname = "m1"\nattach = "rp.0"\nram = 0\npmem = 0', "memdev[1]: has neither ram nor pmem"),
    ('[[memdev]]\nname = "m1"\nattach = "rp.0"\nnuma_node = -2', "memdev[1].numa_node: must be >= -1"),
    ('[[memdev]]\nname = "m1"\nattach = "rp.0"\nram = true', "memdev[1].ram: expected a size"),
    # references
    ('[[memdev]]\nname = "m1"\nattach = "nowhere"', "memdev[1].attach: unknown root port, switch dport or RCH 'nowhere'"),
    ('[[memdev]]\nname = "m1"\nattach = "rp.0"', "memdev[1].attach: 'rp.0' already has a device below it"),
    ('[[memdev]]\nname = "rp.0"\nattach = "rp.0"', "memdev[1].name: name 'rp.0' already used by root_port[0].name"),
    ('[[root_port]]\nname = "rp.1"\nhost_bridge = "hb.9"', "root_port[1].host_bridge: unknown host bridge 'hb.9'"),
    ('[[switch]]\nname = "sw.0"\nparent = "rp.9"\ndports = [{name = "d.0"}]', "switch[0].parent: unknown root port or switch dport 'rp.9'"),
    ('[[switch]]\nname = "sw.0"\nparent = "rp.0"', "switch[0].dports: a switch needs at least one downstream port"),
    ('[[switch]]\nname = "sw.0"\nparent = "rp.0"\ndports = [{id = 1}]', "switch[0].dports[0].name: missing"),
    ('[[switch]]\nname = "sw.0"\nparent = "rp.0"\ndports = [{name = "d.0", x = 1}]', "switch[0].dports[0].x: unknown field"),
    ('[[host_bridge]]\nname = "hb.1"\nuid = 0', "host_bridge: uids must be unique"),
    ('[[host_bridge]]\nname = "hb.0"\nuid = 5', "host_bridge[1].name: name 'hb.0' already used by host_bridge[0].name"),
    # windows
    ('[[window]]\ntargets = ["hb.7"]\nsize = "1G"', "window[1].targets: unknown host bridge 'hb.7'"),
    ('[[window]]\ntargets = []\nsize = "1G"', "window[1].targets: expected a list of host bridge names"),
    ('[[window]]\ntargets = "hb.0"\nsize = "1G"', "window[1].targets: expected a list of host bridge names"),
    ('[[window]]\ntargets = ["hb.0", "hb.0"]\nsize = "1G"', "window[1].targets: a host bridge appears twice"),
    ('[[window]]\ntargets = ["hb.0"]\nsize = "1G"\ntype = "flash"', "window[1].type: must be 'ram', 'pmem' or both"),
    ('[[window]]\ntargets = ["hb.0"]\nsize = "1G"\ngranularity = 1000', "window[1].granularity: must be a power of two in 256..16384"),
    ('[[window]]\ntargets = ["hb.0"]\nsize = "1G"\ngranularity = 32768', "window[1].granularity: must be a power of two in 256..16384"),
    ('[[window]]\ntargets = ["hb.0"]\nsize = "1G"\ngranularity = 128', "window[1].granularity: must be >= 256"),
    ('[[window]]\ntargets = ["hb.0"]\nsize = "300M"', "window[1].size: must be a non-zero multiple of 256M x ways"),
    ('[[window]]\ntargets = ["hb.0"]\nsize = 0', "window[1].size: must be a non-zero multiple of 256M x ways"),
    # auto regions
    ('[[auto_region]]\nwindow = 4\nmemdevs = ["cxl_mem.0"]\nsize = "256M"', "auto_region[0].window: no window 4"),
    ('[[auto_region]]\nwindow = 0\nmemdevs = ["cxl_mem.7"]\nsize = "256M"', "auto_region[0].memdevs: unknown memdev 'cxl_mem.7'"),
    ('[[auto_region]]\nwindow = 0\nmemdevs = ["cxl_mem.0"]\nsize = "128M"', "auto_region[0].size: must be a multiple of 256M x 1"),
    # top level
    ('provider = "bios"', "topology.provider: must be 'cxl_test' or 'acpi'"),
    ('block_size = "96M"', "topology.block_size: must be a power of two >= 128M"),
    ('block_size = "64M"', "topology.block_size: must be a power of two >= 128M"),
    ('auto_online_blocks = "sometimes"', "topology.auto_online_blocks: must be offline, online"),
    ('[[node]]\nid = 0', "node[0].memory: missing"),
])
def test_bad_field_is_named(tmp_path, snippet, field):
    # top-level keys must precede the tables: put them first
    text = (snippet + "\n" + BASE) if not snippet.startswith("[") else (BASE + "\n" + snippet)
    msg = error_of(tmp_path, text)
    assert msg.startswith(field), msg


def test_rch_memdev_with_pmem_is_refused(tmp_path):
    msg = error_of(tmp_path, BASE + """
[[host_bridge]]
name = "rch.0"
rch = true
[[memdev]]
name = "cxl_rcd.1"
attach = "rch.0"
ram = "2G"
""")
    assert msg.startswith("memdev[1].pmem: an RCD below an RCH has no pmem partition"), msg


def test_root_port_on_rch_is_refused(tmp_path):
    msg = error_of(tmp_path, BASE + """
[[host_bridge]]
name = "rch.0"
rch = true
[[root_port]]
name = "rp.1"
host_bridge = "rch.0"
""")
    assert msg.startswith("root_port[1].host_bridge: 'rch.0' is an RCH"), msg


def test_toml_syntax_error_names_the_file(tmp_path):
    msg = error_of(tmp_path, "name = [unterminated\n")
    assert "t.toml" in msg


def test_unknown_topology_name():
    with pytest.raises(TopologyError) as excinfo:
        load("no_such_topology")
    assert "unknown topology 'no_such_topology'" in str(excinfo.value)
    assert "cxl_test" in str(excinfo.value)


def test_missing_file():
    with pytest.raises(TopologyError) as excinfo:
        load("/nonexistent/dir/x.toml")
    assert str(excinfo.value).startswith("/nonexistent/dir/x.toml:")


@pytest.mark.parametrize("text,value", [("256M", 256 << 20), ("1G", 1 << 30), ("2GiB", 2 << 30),
                                        ("0x40000000", 1 << 30), (4096, 4096), ("512", 512),
                                        ("1T", 1 << 40), ("16k", 16 << 10)])
def test_parse_size(text, value):
    assert parse_size(text, "x") == value


@pytest.mark.parametrize("text", ["1.5G", "G", "-1", "", "0xZZ", "1 GB extra", None, 1.0])
def test_parse_size_rejects(text):
    with pytest.raises(TopologyError) as excinfo:
        parse_size(text, "where.size")
    assert str(excinfo.value).startswith("where.size:")


def test_switch_topology_builds(tmp_path):
    from cxlfs.topology.build import build
    t = load_text(tmp_path, """
name = "sw"
[[host_bridge]]
name = "hb.0"
[[root_port]]
name = "rp.0"
host_bridge = "hb.0"
[[switch]]
name = "sw.0"
parent = "rp.0"
dports = [{ name = "d.0", id = 0 }, { name = "d.1", id = 1 }]
[[memdev]]
name = "cxl_mem.0"
attach = "d.0"
[[memdev]]
name = "cxl_mem.1"
attach = "d.1"
[[window]]
targets = ["hb.0"]
size = "2G"
type = ["ram", "pmem"]
""")
    kernel = build(t)
    devs = kernel.ls("/bus/cxl/devices")
    assert {"root0", "port1", "mem0", "mem1", "decoder0.0"} <= set(devs)
    assert kernel.cat("/devices/platform/cxl_acpi.0/root0/decoder0.0/cap_ram") == "1\n"
    assert kernel.cat("/devices/platform/cxl_acpi.0/root0/decoder0.0/cap_pmem") == "1\n"


def test_window_node_must_be_an_integer(tmp_path):
    msg = error_of(tmp_path, BASE.replace('size = "1G"\n', 'size = "1G"\nnode = "far"\n'))
    assert msg.startswith("window[0].node"), msg


def test_boolean_fields_must_be_booleans(tmp_path):
    msg = error_of(tmp_path, BASE + '[[host_bridge]]\nname = "hb.1"\nrch = "no"\n')
    assert msg.startswith("host_bridge[1].rch"), msg
