"""Regions end to end with the real Debian `cxl` (ndctl 76.1) and tools/cxl-ram-region
(kernel-abi.md §2.6, §8, §11; userspace-clients.md §3.2-§3.6).

* PMEM regions through `cxl create-region`: one way, two ways across host bridges, two ways
  below one switch; listed committed with the switch / host-bridge / endpoint decoders
  programmed; disable / enable / destroy (refused while enabled without -f); the memdevs are
  usable again afterwards; failing creations leave no region behind.
* RAM regions (76.1 cannot create them: `region type 'ram' not supported yet`) through
  tools/cxl-ram-region, then managed with `cxl` and seen by `daxctl`.
* `cxl disable-memdev -f` of a member of the auto-assembled region0 tears its decode down.

Every scenario runs its commands in one `cxlfs exec` (``script``); 76.1 `create-region`
exits 0 on most failures, so its JSON and stderr are what is checked."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from helpers import Out, by_name, collect, exists, mount, script, umount

pytestmark = [pytest.mark.clients, pytest.mark.fuse, pytest.mark.root]

MiB = 1 << 20
GiB = 1 << 30
TOOL = str(Path(__file__).resolve().parents[1] / "tools" / "cxl-ram-region")
CXLFS = f"{sys.executable} -m cxlfs"

# root decoder windows of cxl_test (cxl list -D -d root; test_cxl_cli.py checks them)
WINDOW = {"decoder0.0": 0xf010000000, "decoder0.1": 0xf050000000, "decoder0.2": 0xf0d0000000,
          "decoder0.3": 0xf110000000, "decoder0.4": 0xf190000000, "decoder0.5": 0xf1d0000000}
REGION0 = 0xf010000000


# ---- running a scenario ------------------------------------------------------------------------

def regions(data) -> dict[str, dict]:
    return by_name(collect(data, "region"), "region")


def decoders(data) -> dict[str, dict]:
    return by_name(collect(data, "decoder"), "decoder")


# ---- topology helpers over `cxl list -P -E` ------------------------------------------------------

class Topo:
    """Which port hosts what, which endpoint port belongs to which memdev."""

    def __init__(self, ports_out: Out, endpoints_out: Out):
        self.port_of = {p["host"]: p["port"] for p in collect(ports_out.ok().json, "port")}
        self.endpoint_of = {e["host"]: e["endpoint"] for e in collect(endpoints_out.ok().json, "endpoint")}

    def port_id(self, host: str) -> str:
        return self.port_of[host].removeprefix("port")

    def ep_id(self, memdev: str) -> str:
        return self.endpoint_of[memdev].removeprefix("endpoint")

    def decoders_of_port(self, decs: dict[str, dict], host: str) -> dict[str, dict]:
        pid = self.port_id(host)
        return {n: d for n, d in decs.items() if n.split(".")[0] == f"decoder{pid}"}

    def decoders_of_memdev(self, decs: dict[str, dict], memdev: str) -> dict[str, dict]:
        eid = self.ep_id(memdev)
        return {n: d for n, d in decs.items() if n.split(".")[0] == f"decoder{eid}"}


def region_decoder(decs: dict[str, dict], region: str) -> dict:
    """The one decoder of ``decs`` programmed for ``region``."""
    mine = [d for d in decs.values() if d.get("region") == region]
    assert len(mine) == 1, f"expected one decoder of {region} in {sorted(decs)}, got {mine}"
    return mine[0]


def targets(dec: dict) -> dict[int, str]:
    return {t["position"]: t["target"] for t in dec.get("targets", [])}


# ==== three PMEM regions, created once and inspected by several tests ==============================

CREATE = {
    "one_way": "cxl create-region -t pmem -d decoder0.2 -m mem2",
    "switch": "cxl create-region -t pmem -d decoder0.4 -w 2 -m mem8 mem9",
    # decoder0.3 lies above decoder0.2 and the auto region on HB0: created last, in HPA order
    "two_hb": "cxl create-region -t pmem -d decoder0.3 -m mem0 mem1",
}
LISTS = {
    "R": "cxl list -R",
    "RT": "cxl list -R -T",
    "RDu": "cxl list -R -D -u",
    "DT": "cxl list -D -T",
    "P": "cxl list -P",
    "E": "cxl list -E",
}


@pytest.fixture(scope="module")
def pmem():
    """One mount with the three PMEM regions; every listing taken in the same exec."""
    mnt = mount()
    try:
        names = list(CREATE) + list(LISTS)
        outs = script(mnt, *CREATE.values(), *LISTS.values())
        yield dict(zip(names, outs))
    finally:
        umount(mnt)


@pytest.fixture(scope="module")
def pmem_names(pmem) -> dict[str, str]:
    """scenario -> region name, from the JSON create-region printed."""
    out = {}
    for key in CREATE:
        (r,) = pmem[key].ok().json
        out[key] = r["region"]
    return out


@pytest.fixture(scope="module")
def topo(pmem) -> Topo:
    return Topo(pmem["P"], pmem["E"])


@pytest.mark.parametrize("key", list(CREATE))
def test_create_region_prints_the_committed_region(pmem, key):
    res = pmem[key].ok()
    assert "created 1 region" in res.err, res.err
    (r,) = res.json
    assert r["decode_state"] == "commit"
    assert "state" not in r                          # enabled (bound to cxl_region)
    memdevs = CREATE[key].split("-m ")[1].split()
    assert {m["position"]: m["memdev"] for m in r["mappings"]} == dict(enumerate(memdevs))


def test_region_names_follow_the_root_decoders_ids(pmem_names):
    # each root decoder holds a pre-allocated id: decoder0.N offers regionN (0.0 offers region6)
    assert pmem_names == {"one_way": "region2", "switch": "region4", "two_hb": "region3"}


EXPECT = {  # key: (window, size, ways, granularity)
    "one_way": ("decoder0.2", 1 * GiB, 1, 256),   # x1 window: root granularity 256 (minimised)
    "switch": ("decoder0.4", 1 * GiB, 2, 256),
    "two_hb": ("decoder0.3", 2 * GiB, 2, 4096),   # x2 window: its granularity 4096
}


@pytest.mark.parametrize("key", list(EXPECT))
def test_regions_listed_committed(pmem, pmem_names, key):
    window, size, ways, gran = EXPECT[key]
    name = pmem_names[key]
    r = regions(pmem["R"].ok().json)[name]
    assert r["resource"] == WINDOW[window]           # first region of its window: at its start
    assert r["size"] == size
    assert r["interleave_ways"] == ways
    assert r["interleave_granularity"] == gran
    assert r["decode_state"] == "commit"
    assert "state" not in r
    # region0 is untouched by the new ones
    r0 = regions(pmem["R"].json)["region0"]
    assert (r0["resource"], r0["size"], r0["decode_state"]) == (REGION0, 512 * MiB, "commit")


def test_regions_listed_human(pmem, pmem_names):
    rs = regions(pmem["RDu"].ok().json)
    assert set(rs) == {"region0", *pmem_names.values()}
    r = rs[pmem_names["two_hb"]]
    assert r["resource"] == "0xf110000000"
    assert r["size"] == "2.00 GiB (2.15 GB)"
    r = rs[pmem_names["one_way"]]
    assert r["resource"] == "0xf0d0000000"
    assert r["size"] == "1024.00 MiB (1073.74 MB)"
    # -D alongside: the root windows are listed with the regions nested below them
    decs = decoders(pmem["RDu"].json)
    assert decs["decoder0.3"]["resource"] == "0xf110000000"
    nested = decs["decoder0.3"].get("regions:decoder0.3", [])
    assert [x["region"] for x in nested] == [pmem_names["two_hb"]]
    # ... and every decoder programmed for a region names it, in human units
    programmed = [d for d in decs.values() if d.get("region") == pmem_names["two_hb"]]
    assert len(programmed) == 6               # 2 host bridges, 2 switches, 2 endpoints
    for d in programmed:
        assert d["resource"] == "0xf110000000" and d["size"] == "2.00 GiB (2.15 GB)", d
    eps = [d for d in programmed if "mode" in d]
    assert len(eps) == 2
    for d in eps:
        assert d["mode"] == "pmem" and d["dpa_size"] == "1024.00 MiB (1073.74 MB)", d
        assert d["dpa_resource"] == "0x40000000" and d["interleave_ways"] == 2, d


@pytest.mark.parametrize("key", list(EXPECT))
def test_region_mappings(pmem, pmem_names, key, topo):
    r = regions(pmem["RT"].ok().json)[pmem_names[key]]
    memdevs = CREATE[key].split("-m ")[1].split()
    by_pos = {m["position"]: (m["memdev"], m["decoder"]) for m in r["mappings"]}
    assert sorted(by_pos) == list(range(len(memdevs)))
    for pos, mem in enumerate(memdevs):
        got_mem, dec = by_pos[pos]
        assert got_mem == mem
        assert dec.split(".")[0] == f"decoder{topo.ep_id(mem)}"    # one of mem's endpoint decoders


def _check_endpoint(decs, topo, mem, region, start, size, ways, gran, dpa_size, index=0):
    mine = topo.decoders_of_memdev(decs, mem)
    d = region_decoder(mine, region)
    assert d["decoder"] == f"decoder{topo.ep_id(mem)}.{index}"
    assert d["mode"] == "pmem"
    assert d["dpa_resource"] == 1 * GiB               # the pmem partition follows 1G of ram
    assert d["dpa_size"] == dpa_size
    assert d["resource"] == start and d["size"] == size
    assert d["interleave_ways"] == ways
    if ways > 1:
        assert d["interleave_granularity"] == gran
    else:
        assert "interleave_granularity" not in d      # cxl list omits it for x1


def _check_port(decs, topo, host, region, start, size, ways, tgts, gran=None):
    d = region_decoder(topo.decoders_of_port(decs, host), region)
    assert d["resource"] == start and d["size"] == size, d
    assert d["interleave_ways"] == ways, d
    if gran is not None:
        assert d["interleave_granularity"] == gran, d
    assert targets(d) == tgts, d
    return d


def test_one_way_region_decoders(pmem, pmem_names, topo):
    name, start = pmem_names["one_way"], WINDOW["decoder0.2"]
    decs = decoders(pmem["DT"].ok().json)
    _check_endpoint(decs, topo, "mem2", name, start, 1 * GiB, 1, None, 1 * GiB)
    _check_port(decs, topo, "cxl_switch_uport.2", name, start, 1 * GiB, 1, {0: "cxl_switch_dport.2"})
    hb = _check_port(decs, topo, "cxl_host_bridge.0", name, start, 1 * GiB, 1, {0: "cxl_root_port.2"})
    # HB0's decoder 0 belongs to region0: this region reserved the next one
    assert hb["decoder"] == f"decoder{topo.port_id('cxl_host_bridge.0')}.1"


def test_two_host_bridge_region_decoders(pmem, pmem_names, topo):
    name, start, size = pmem_names["two_hb"], WINDOW["decoder0.3"], 2 * GiB
    decs = decoders(pmem["DT"].ok().json)
    # mem0's decoder 0 is region0's: the region took decoder 1 (its DPA still starts the pmem part)
    _check_endpoint(decs, topo, "mem0", name, start, size, 2, 4096, 1 * GiB, index=1)
    _check_endpoint(decs, topo, "mem1", name, start, size, 2, 4096, 1 * GiB, index=0)
    # each host bridge sees one way: x1 decoders down to the switch above each memdev
    _check_port(decs, topo, "cxl_host_bridge.0", name, start, size, 1, {0: "cxl_root_port.0"})
    _check_port(decs, topo, "cxl_host_bridge.1", name, start, size, 1, {0: "cxl_root_port.1"})
    _check_port(decs, topo, "cxl_switch_uport.0", name, start, size, 1, {0: "cxl_switch_dport.0"})
    _check_port(decs, topo, "cxl_switch_uport.1", name, start, size, 1, {0: "cxl_switch_dport.1"})
    # HB0 now carries three regions in HPA order: region0, the one-way region, this one
    hb0 = topo.decoders_of_port(decs, "cxl_host_bridge.0")
    by_region = {d["region"]: n for n, d in hb0.items()}
    order = sorted(by_region, key=lambda r: int(by_region[r].split(".")[1]))
    assert order == ["region0", pmem_names["one_way"], name]


def test_switch_region_decoders(pmem, pmem_names, topo):
    name, start, size = pmem_names["switch"], WINDOW["decoder0.4"], 1 * GiB
    decs = decoders(pmem["DT"].ok().json)
    for mem in ("mem8", "mem9"):
        _check_endpoint(decs, topo, mem, name, start, size, 2, 256, 512 * MiB)
    # the switch interleaves its two downstream ports, the host bridge passes one way through
    _check_port(decs, topo, "cxl_switch_uport.4", name, start, size, 2,
                {0: "cxl_switch_dport.8", 1: "cxl_switch_dport.9"}, gran=256)
    _check_port(decs, topo, "cxl_host_bridge.2", name, start, size, 1, {0: "cxl_root_port.4"})


# ==== lifecycle (fresh mounts) =====================================================================

def test_disable_enable_destroy_pmem_region(fresh_mount):
    mnt = fresh_mount
    o = script(mnt,
               "cxl create-region -t pmem -d decoder0.2 -m mem2",            # 0
               "cxl destroy-region region2",                                # 1 refused
               "cxl list -R -r region2",                                    # 2
               "cxl disable-region region2",                                # 3
               "cxl list -R",                                               # 4
               "cxl list -R -i -r region2",                                 # 5
               "cxl enable-region region2",                                 # 6
               "cxl list -R -r region2",                                    # 7
               "cxl destroy-region -f region2",                             # 8
               "cxl list -R -i",                                            # 9
               "cxl list -D -i -E -m mem2",                                 # 10
               exists("/sys/bus/cxl/devices/region2"),                      # 11
               "cxl create-region -t pmem -d decoder0.2 -m mem2",           # 12 again
               "cxl list -R -T")                                            # 13
    (r,) = o[0].ok().json
    assert r["region"] == "region2"

    assert o[1].rc != 0
    assert "region2 active. Disable it or use --force" in o[1].err
    assert "destroyed 0 regions" in o[1].err
    assert regions(o[2].ok().json)["region2"]["decode_state"] == "commit"

    assert "disabled 1 region" in o[3].ok().err
    assert "region2" not in regions(o[4].ok().json)                 # disabled: hidden without -i
    r = regions(o[5].ok().json)["region2"]
    assert r["state"] == "disabled" and r["decode_state"] == "commit"   # unbound, still decoding

    assert "enabled 1 region" in o[6].ok().err
    r = regions(o[7].ok().json)["region2"]
    assert "state" not in r and r["decode_state"] == "commit"

    assert "destroyed 1 region" in o[8].ok().err
    assert set(regions(o[9].ok().json)) == {"region0"}
    assert o[11].out.strip() == "no"
    # the endpoint decoder lost its DPA and region; mode stays (libcxl does not reset it)
    ep = [d for d in collect(o[10].ok().json, "decoder") if d["decoder"].endswith(".0")]
    assert ep and all(d.get("dpa_size", 0) == 0 and "region" not in d for d in ep), ep
    assert ep[0]["mode"] == "pmem"

    # mem2 and the window can be used again: same HPA, same endpoint decoder and DPA
    (again,) = o[12].ok().json
    assert "created 1 region" in o[12].err
    assert again["resource"] == WINDOW["decoder0.2"] and again["size"] == 1 * GiB
    assert again["decode_state"] == "commit"
    assert again["mappings"][0]["memdev"] == "mem2"
    assert again["mappings"][0]["decoder"] == r_decoder(o[0])
    assert regions(o[13].ok().json)[again["region"]]["decode_state"] == "commit"


def r_decoder(create_out: Out, pos: int = 0) -> str:
    (r,) = create_out.json
    return {m["position"]: m["decoder"] for m in r["mappings"]}[pos]


def test_memdevs_reused_after_destroy_across_host_bridges(fresh_mount):
    o = script(fresh_mount,
               "cxl create-region -t pmem -d decoder0.3 -m mem0 mem1",
               "cxl destroy-region -f region3",
               "cxl create-region -t pmem -d decoder0.3 -m mem0 mem1",
               "cxl list -R",
               "cxl list -D -d decoder0.3")
    (first,) = o[0].ok().json
    assert "destroyed 1 region" in o[1].ok().err
    (second,) = o[2].ok().json
    assert "created 1 region" in o[2].err
    assert second["region"] != "region0"
    for key in ("resource", "size", "interleave_ways", "interleave_granularity"):
        assert second[key] == first[key], key
    assert second["mappings"] == first["mappings"]
    assert set(regions(o[3].ok().json)) == {"region0", second["region"]}
    # the window is fully used again
    (root,) = collect(o[4].ok().json, "decoder")
    assert root["max_available_extent"] == 0


def test_failing_create_region_leaves_no_region(fresh_mount):
    """mem1 sits below HB1, which is position 1 of decoder0.3: putting it first fails at
    the target write (ENXIO); 76.1 deletes the half-built region but still exits 0."""
    o = script(fresh_mount,
               "cxl create-region -t pmem -d decoder0.3 -m mem1 mem0",
               "cxl list -R -i",
               "ls /sys/bus/cxl/devices/decoder0.3",
               "cxl create-region -t pmem -d decoder0.3 -m mem0 mem1")
    assert o[0].json == []
    assert "failed to set target0 to mem1" in o[0].err
    assert "created 0 regions" in o[0].err
    assert set(regions(o[1].ok().json)) == {"region0"}
    assert not [n for n in o[2].ok().out.split() if n.startswith("region")]
    # the memdevs are not spoiled: the right order works
    (r,) = o[3].ok().json
    assert r["decode_state"] == "commit" and "created 1 region" in o[3].err


def test_hpa_order_on_a_shared_host_bridge(fresh_mount):
    """decoder0.2 lies below decoder0.3: once a decoder0.3 region uses HB0, a decoder0.2
    region through HB0 violates HPA order (EBUSY); it works after the first is destroyed."""
    o = script(fresh_mount,
               "cxl create-region -t pmem -d decoder0.3 -m mem0 mem1",
               "cxl create-region -t pmem -d decoder0.2 -m mem6",
               "cxl list -R -i",
               "cxl destroy-region -f region3",
               "cxl create-region -t pmem -d decoder0.2 -m mem6")
    (big,) = o[0].ok().json
    assert o[1].json == []
    assert "failed to set target0 to mem6" in o[1].err and "created 0 regions" in o[1].err
    assert set(regions(o[2].ok().json)) == {"region0", big["region"]}
    o[3].ok()
    (small,) = o[4].ok().json
    assert small["resource"] == WINDOW["decoder0.2"] and small["decode_state"] == "commit"


def test_create_region_ram_and_wrong_window_refused(fresh_mount):
    o = script(fresh_mount,
               "cxl create-region -t ram -d decoder0.1 -m mem2 mem1",
               "cxl create-region -t pmem -d decoder0.1 -m mem2 mem1",
               "cxl create-region -t pmem -d decoder0.2 -m mem1",
               "cxl list -R -i")
    # 76.1: RAM regions are not supported by the tool (no writes at all), exit status 0
    assert "region type 'ram' not supported yet" in o[0].err
    assert "created 0 regions" in o[0].err
    assert "decoder0.1 is not pmem capable" in o[1].err
    assert "created 0 regions" in o[1].err
    # mem1 (below HB1) is not reachable through decoder0.2 (HB0 only)
    assert "created 0 regions" in o[2].err and o[2].json == []
    assert set(regions(o[3].ok().json)) == {"region0"}


def test_disable_memdev_tears_down_region0(fresh_mount):
    o = script(fresh_mount,
               "cxl disable-memdev -f mem4",
               "cxl list -R -i -T",
               "cxl list -R",
               "daxctl list -R -D -i",
               exists("/dev/dax0.0"),
               exists("/sys/devices/system/node/node2"),
               "cat /sys/bus/cxl/devices/region0/commit")
    o[0].ok()
    r = regions(o[1].ok().json)["region0"]
    assert r["decode_state"] == "reset"
    assert r["state"] == "disabled"
    # mem4's position is empty now (libcxl reports the lookup failure of target1)
    assert [(m["position"], m["memdev"]) for m in r["mappings"]] == [(0, "mem0")]
    assert "region0" not in regions(o[2].ok().json)
    assert o[3].ok().json == []                                     # no dax region any more
    assert o[4].out.strip() == "no"
    assert o[5].out.strip() == "no"          # its (offline) memory was removed: CPU-less node gone
    assert o[6].out.strip() == "0"


# ==== RAM regions through tools/cxl-ram-region =====================================================

def test_ram_region_tool_lifecycle(fresh_mount):
    o = script(fresh_mount,
               f"{TOOL} -d decoder0.1 mem2 mem1",                  # 0
               "cxl list -R -T -r region1",                         # 1
               "daxctl list -R -D -r 1",                            # 2
               exists("/dev/dax1.0"),                               # 3
               "cxl disable-region region1",                        # 4
               "cxl list -R -i -r region1",                         # 5
               "daxctl list -R -D -r 1",                            # 6
               exists("/dev/dax1.0"),                               # 7
               "cxl enable-region region1",                         # 8
               "daxctl list -D -r 1",                               # 9
               "cxl destroy-region region1",                        # 10
               "cxl destroy-region -f region1",                     # 11
               "cxl list -R -i",                                    # 12
               "daxctl list -R -D -i",                              # 13
               exists("/dev/dax1.0"),                               # 14
               exists("/sys/devices/system/node/node3"),            # 15
               "cat /sys/bus/cxl/devices/decoder0.1/create_ram_region")  # 16
    assert o[0].ok().out.strip() == "region1"
    r = regions(o[1].ok().json)["region1"]
    assert r["resource"] == WINDOW["decoder0.1"] and r["size"] == 2 * GiB
    assert r["interleave_ways"] == 2 and r["interleave_granularity"] == 4096
    assert r["decode_state"] == "commit" and "state" not in r
    assert {m["position"]: m["memdev"] for m in r["mappings"]} == {0: "mem2", 1: "mem1"}

    (dr,) = o[2].ok().json
    assert dr["path"] == "/platform/cxl_acpi.0/root0/decoder0.1/region1/dax_region1"
    assert dr["id"] == 1 and dr["size"] == 2 * GiB
    (dev,) = dr["devices"]
    assert dev["chardev"] == "dax1.0" and dev["mode"] == "system-ram"
    assert dev["target_node"] == 3                  # decoder0.1's own NUMA node
    assert dev["total_memblocks"] == 16 and dev["online_memblocks"] == 0
    assert o[3].out.strip() == "yes"

    assert "disabled 1 region" in o[4].ok().err
    r = regions(o[5].ok().json)["region1"]
    assert r["state"] == "disabled" and r["decode_state"] == "commit"
    assert o[6].ok().json == []
    assert o[7].out.strip() == "no"

    assert "enabled 1 region" in o[8].ok().err
    (dev,) = o[9].ok().json
    assert dev["chardev"] == "dax1.0" and dev["mode"] == "system-ram"

    assert o[10].rc != 0 and "region1 active. Disable it or use --force" in o[10].err
    assert "destroyed 1 region" in o[11].ok().err
    assert set(regions(o[12].ok().json)) == {"region0"}
    assert [d["id"] for d in o[13].ok().json] == [0]
    assert o[14].out.strip() == "no"
    assert o[15].out.strip() == "no"
    assert o[16].ok().out.strip() == "region1"      # the freed id is offered again


def test_ram_region_tool_errors(fresh_mount):
    o = script(fresh_mount,
               f"{TOOL} -d decoder0.1 -s 4G mem2 mem1",            # 0: window is 2G
               f"{TOOL} -d decoder0.1 mem1 mem2",                  # 1: HB1 at position 0
               "cxl list -R -i",                                    # 2
               "ls /sys/bus/cxl/devices/decoder0.1",                # 3
               "cxl list -D -i -E -m mem1",                         # 4
               f"{TOOL} -d decoder0.1 mem2 mem1")                   # 5: now right
    assert o[0].rc == 1 and o[0].out == ""
    assert "step 4: writing '0x100000000' to bus/cxl/devices/region1/size failed: ERANGE" in o[0].err
    assert o[1].rc == 1 and o[1].out == ""
    assert "to bus/cxl/devices/region1/target0 failed: ENXIO" in o[1].err
    assert set(regions(o[2].ok().json)) == {"region0"}
    assert not [n for n in o[3].ok().out.split() if n.startswith("region")]
    assert all(d.get("dpa_size", 0) == 0 for d in collect(o[4].ok().json, "decoder")
               if d["decoder"].startswith("decoder"))
    assert o[5].ok().out.strip() == "region1"


def test_disable_region_with_online_memory_strands_it(fresh_mount):
    """76.1 `cxl disable-region` does not offline the memory: kmem's removal fails, the blocks
    stay online ("cannot be hotremoved until the next reboot") while the dax device goes;
    re-enabling finds the range busy as System RAM and creates no dax region."""
    o = script(fresh_mount,
               f"{TOOL} -d decoder0.1 mem2 mem1",
               "daxctl online-memory dax1.0",
               "cxl disable-region region1",
               "daxctl list -r 1",
               "ls /sys/devices/system/node/node3 | grep -c '^memory[0-9]'",
               "cat /sys/devices/system/memory/memory7690/state",
               f"{CXLFS} dmesg {fresh_mount}",
               "cxl enable-region region1",
               "daxctl list -R -D -r 1",
               "cxl list -R -r region1")
    o[0].ok(), o[1].ok(), o[2].ok()
    assert o[3].ok().json == []
    assert o[4].out.strip() == "16"
    assert o[5].out.strip() == "online"
    assert "kmem dax1.0: mapping0: 0xf050000000-0xf0cfffffff cannot be hotremoved until the next reboot" \
        in o[6].ok().out
    assert "enabled 1 region" in o[7].ok().err
    assert o[8].ok().json == []
    assert regions(o[9].ok().json)["region1"]["decode_state"] == "commit"


def test_ram_region_bound_later_by_enable_region(fresh_mount):
    """-b none leaves the committed region unbound; `cxl enable-region` binds it and the
    dax region with its kmem device follows."""
    o = script(fresh_mount,
               f"{TOOL} -b none -d decoder0.1 mem2 mem1",
               "cxl list -R -i -r region1",
               "daxctl list -R -D -r 1",
               "cxl enable-region region1",
               "cxl list -R -r region1",
               "daxctl list -R -D -r 1")
    assert o[0].ok().out.strip() == "region1"
    r = regions(o[1].ok().json)["region1"]
    assert r["state"] == "disabled" and r["decode_state"] == "commit"
    assert o[2].ok().json == []
    assert "enabled 1 region" in o[3].ok().err
    assert "state" not in regions(o[4].ok().json)["region1"]
    (dr,) = o[5].ok().json
    assert [d["chardev"] for d in dr["devices"]] == ["dax1.0"]
    assert dr["devices"][0]["mode"] == "system-ram"


def test_ram_region_tool_destroy(fresh_mount):
    o = script(fresh_mount,
               f"{TOOL} -d decoder0.1 mem2 mem1",
               f"{TOOL} --destroy region1",
               "cxl list -R -i",
               "cxl list -D -i -E -m 'mem2 mem1'")
    assert o[0].ok().out.strip() == "region1"
    assert o[1].ok().out.strip() == "region1", o[1].err
    assert set(regions(o[2].ok().json)) == {"region0"}
    ep = [d for d in collect(o[3].ok().json, "decoder") if d["decoder"].endswith(".0")]
    assert ep and all(d.get("dpa_size", 0) == 0 and "region" not in d for d in ep), ep


def test_regions_on_one_memdev_destroyed_in_reverse_dpa_order(fresh_mount):
    """Two 512M regions on mem2: DPA is freed last-allocated-first, so destroying the older
    region first fails at its dpa_size write (EBUSY) and leaves it decommitted and detached
    (76.1 cannot finish it: target0 is empty).  Newest-first works (on mem8, decoder0.4)."""
    o = script(fresh_mount,
               "cxl create-region -t pmem -d decoder0.2 -m mem2 -s 512M",     # 0
               "cxl create-region -t pmem -d decoder0.2 -m mem2 -s 512M",     # 1
               "cxl destroy-region -f region2",                               # 2 oldest first
               "cxl list -R -i -T",                                           # 3
               "cxl create-region -t pmem -d decoder0.4 -m mem8 -s 512M",     # 4
               "cxl create-region -t pmem -d decoder0.4 -m mem8 -s 512M")     # 5
    (a,) = o[0].ok().json
    (b,) = o[1].ok().json
    assert a["region"] == "region2"
    assert b["resource"] == a["resource"] + 512 * MiB             # next HPA in the window
    dec_a, dec_b = r_decoder(o[0]), r_decoder(o[1])
    assert dec_a.split(".")[0] == dec_b.split(".")[0]            # both on mem2's endpoint
    assert int(dec_b.split(".")[1]) == int(dec_a.split(".")[1]) + 1

    assert o[2].rc != 0
    assert f"{dec_a}: set_dpa_size failed: Device or resource busy" in o[2].err
    assert "destroyed 0 regions" in o[2].err
    rs = regions(o[3].ok().json)
    assert rs["region2"]["decode_state"] == "reset" and rs["region2"]["state"] == "disabled"
    assert rs["region2"].get("mappings", []) == []
    assert rs[b["region"]]["decode_state"] == "commit"            # the younger one is untouched

    (c,) = o[4].ok().json
    (d,) = o[5].ok().json
    o2 = script(fresh_mount, f"cxl destroy-region -f {d['region']}", f"cxl destroy-region -f {c['region']}",
                "cxl list -R -i")
    assert "destroyed 1 region" in o2[0].ok().err
    assert "destroyed 1 region" in o2[1].ok().err
    assert {c["region"], d["region"]}.isdisjoint(regions(o2[2].ok().json))


def test_x8_region_over_both_host_bridges_and_all_switches(fresh_mount):
    """decoder0.3 -w 8 over mem0..mem7: positions alternate host bridges, then root ports,
    then switch ports; each level doubles the granularity (root 4096 -> HB 8192 -> 16384)."""
    mems = [f"mem{i}" for i in range(8)]
    o = script(fresh_mount,
               f"cxl create-region -t pmem -d decoder0.3 -w 8 -m {' '.join(mems)}",
               "cxl list -D -T", "cxl list -P", "cxl list -E")
    (r,) = o[0].ok().json
    name = r["region"]
    assert r["size"] == 2 * GiB and r["interleave_ways"] == 8 and r["interleave_granularity"] == 4096
    assert {m["position"]: m["memdev"] for m in r["mappings"]} == dict(enumerate(mems))
    decs = decoders(o[1].ok().json)
    topo = Topo(o[2], o[3])
    start = WINDOW["decoder0.3"]
    for mem in mems:
        d = region_decoder(topo.decoders_of_memdev(decs, mem), name)
        assert d["interleave_ways"] == 8 and d["dpa_size"] == 256 * MiB, d
    _check_port(decs, topo, "cxl_host_bridge.0", name, start, 2 * GiB, 2,
                {0: "cxl_root_port.0", 1: "cxl_root_port.2"}, gran=8192)
    _check_port(decs, topo, "cxl_host_bridge.1", name, start, 2 * GiB, 2,
                {0: "cxl_root_port.1", 1: "cxl_root_port.3"}, gran=8192)
    for sw in range(4):
        _check_port(decs, topo, f"cxl_switch_uport.{sw}", name, start, 2 * GiB, 2,
                    {0: f"cxl_switch_dport.{sw}", 1: f"cxl_switch_dport.{sw + 4}"}, gran=16384)


def test_x8_region_with_misplaced_peer_is_refused(fresh_mount):
    """mem6 at position 4 would need HB0 to route positions 0 and 4 to different root ports
    (mem0 is below root port 0, mem6 below root port 2): the last target write fails (ENXIO)
    and nothing is left behind."""
    o = script(fresh_mount,
               "cxl create-region -t pmem -d decoder0.3 -w 8 -m mem0 mem1 mem2 mem3 mem6 mem5 mem4 mem7",
               "cxl list -R -i")
    assert o[0].json == []
    assert "failed to set target7 to mem7" in o[0].err and "created 0 regions" in o[0].err
    assert set(regions(o[1].ok().json)) == {"region0"}
