"""The real Debian `cxl` tool (ndctl 76.1) against the mount (userspace-clients.md §2-§3,
ndctl test/cxl-topology.sh).  Region listings are not asserted yet (the DAX layer is in
progress); memdevs, ports, endpoints and decoders are.

Listing tests share one mount per module; enable/disable tests get a fresh mount each."""
from __future__ import annotations

import pytest

from helpers import by_name, collect, cxl, cxl_json

pytestmark = [pytest.mark.clients, pytest.mark.fuse, pytest.mark.root]

GiB = 1 << 30
MiB = 1 << 20

SWITCH_OF = {f"mem{i}": f"cxl_switch_uport.{i % 4}" for i in range(8)} | \
    {"mem8": "cxl_switch_uport.4", "mem9": "cxl_switch_uport.4"}
HB_OF = {f"mem{i}": f"cxl_host_bridge.{i % 2}" for i in range(8)} | \
    {"mem8": "cxl_host_bridge.2", "mem9": "cxl_host_bridge.2", "mem10": "cxl_host_bridge.3"}


def memdevs(mnt, *args) -> dict[str, dict]:
    return by_name(collect(cxl_json(mnt, "-M", *args), "memdev"), "memdev")


def ports(mnt, *args) -> dict[str, dict]:
    return by_name(collect(cxl_json(mnt, "-P", *args), "port"), "port")


def endpoints(mnt, *args) -> dict[str, dict]:
    return by_name(collect(cxl_json(mnt, "-E", *args), "endpoint"), "endpoint")


def decoders(mnt, *args) -> dict[str, dict]:
    return by_name(collect(cxl_json(mnt, "-D", *args), "decoder"), "decoder")


def port_hosting(mnt, host: str, *args) -> str | None:
    """Name of the port whose uport ("host") is ``host``."""
    return next((name for name, p in ports(mnt, *args).items() if p["host"] == host), None)


def endpoint_of(mnt, mem: str) -> dict | None:
    return endpoints_by_memdev(mnt).get(mem)


def endpoints_by_memdev(mnt, *args) -> dict[str, dict]:
    return {e["host"]: e for e in endpoints(mnt, *args).values()}


# ==== listing ======================================================================================

@pytest.mark.parametrize("args", [["-M"], ["-P"], ["-D"], ["-E"], ["-T"], ["-u"], ["-R"], ["-B"],
                                  ["-b", "cxl_test"], ["-M", "-R", "-u", "-b", "cxl_test"],
                                  ["-v"], ["-vv"], ["-i", "-D"], ["-D", "-T", "-u"]])
def test_list_runs_cleanly(mounted, args):
    proc = cxl(mounted, "list", *args)
    assert "failed" not in proc.stderr and "error" not in proc.stderr.lower(), proc.stderr
    cxl_json(mounted, *args)       # valid JSON


def test_list_memdevs(mounted):
    mems = memdevs(mounted)
    assert sorted(mems, key=lambda n: int(n[3:])) == [f"mem{i}" for i in range(11)]
    for name, m in mems.items():
        i = int(name[3:])
        assert m["serial"] == i + 1
        assert "state" not in m
        if i == 10:
            assert m["ram_size"] == 2 * GiB
            assert "pmem_size" not in m
            assert m["host"] == "cxl_rcd.10"
            assert m["numa_node"] == 0
        else:
            assert m["ram_size"] == GiB and m["pmem_size"] == GiB
            assert m["host"] == f"cxl_mem.{i}"
            assert m["numa_node"] == i % 2


def test_list_memdevs_human(mounted):
    mems = memdevs(mounted, "-u")
    assert mems["mem0"]["serial"] == "0x1"
    assert mems["mem9"]["serial"] == "0xa"
    assert mems["mem0"]["pmem_size"] == "1024.00 MiB (1073.74 MB)"
    assert mems["mem0"]["ram_size"] == "1024.00 MiB (1073.74 MB)"
    assert mems["mem10"]["ram_size"] == "2.00 GiB (2.15 GB)"
    one = cxl_json(mounted, "-M", "-u", "-m", "mem3")   # a lone object, not an array
    assert [m["memdev"] for m in one] == ["mem3"]


def test_list_bus(mounted):
    (bus,) = collect(cxl_json(mounted, "-B"), "bus")
    assert bus == {"bus": "root0", "provider": "cxl_test"}
    (bus,) = collect(cxl_json(mounted, "-B", "-T"), "bus")
    assert bus["nr_dports"] == 4
    assert {d["id"]: d["dport"] for d in bus["dports"]} == {i: f"cxl_host_bridge.{i}" for i in range(4)}


def test_bus_filter_by_provider(mounted):
    assert len(memdevs(mounted, "-b", "cxl_test")) == 11
    assert len(memdevs(mounted, "-b", "root0")) == 11
    assert memdevs(mounted, "-b", "ACPI.CXL") == {}
    assert [b["provider"] for b in collect(cxl_json(mounted, "-b", "cxl_test", "-B"), "bus")] == ["cxl_test"]


def test_list_ports(mounted):
    ps = ports(mounted)
    hb = {n: p for n, p in ps.items() if p["depth"] == 1}
    assert {n: p["host"] for n, p in hb.items()} == {"port1": "cxl_host_bridge.0",
                                                     "port2": "cxl_host_bridge.1",
                                                     "port3": "cxl_host_bridge.2"}
    sw = {p["host"] for p in ps.values() if p["depth"] == 2}
    assert sw == {f"cxl_switch_uport.{i}" for i in range(5)}
    assert len(ps) == 8
    assert all("state" not in p for p in ps.values())


@pytest.mark.parametrize("hb,switches", [("port1", {"cxl_switch_uport.0", "cxl_switch_uport.2"}),
                                         ("port2", {"cxl_switch_uport.1", "cxl_switch_uport.3"}),
                                         ("port3", {"cxl_switch_uport.4"})])
def test_switch_ports_under_each_host_bridge(mounted, hb, switches):
    (top,) = [p for p in collect(cxl_json(mounted, "-P"), "port") if p["port"] == hb]
    children = top.get(f"ports:{hb}", [])
    assert {c["host"] for c in children} == switches
    assert all(c["depth"] == 2 for c in children)


def test_port_dports(mounted):
    ps = ports(mounted, "-T")
    expect = {"cxl_host_bridge.0": {0: "cxl_root_port.0", 2: "cxl_root_port.2"},
              "cxl_host_bridge.1": {1: "cxl_root_port.1", 3: "cxl_root_port.3"},
              "cxl_host_bridge.2": {4: "cxl_root_port.4"}}
    for p in ps.values():
        got = {d["id"]: d["dport"] for d in p["dports"]}
        assert p["nr_dports"] == len(got)
        if p["depth"] == 1:
            assert got == expect[p["host"]]
        else:
            i = int(p["host"].rsplit(".", 1)[1])
            ids = [8, 9] if i == 4 else [i, i + 4]
            assert got == {n: f"cxl_switch_dport.{n}" for n in ids}


def test_list_endpoints(mounted):
    eps = endpoints(mounted)
    assert sorted(e["host"] for e in eps.values()) == sorted(f"mem{i}" for i in range(11))
    for e in eps.values():
        assert e["depth"] == (1 if e["host"] == "mem10" else 3)
        assert "state" not in e


def test_endpoints_nest_under_their_switch_and_carry_memdevs(mounted):
    data = cxl_json(mounted, "-P", "-E", "-M")
    for sw in (p for p in collect(data, "port") if p["depth"] == 2):
        eps = sw[f"endpoints:{sw['port']}"]
        mems = sorted(e["memdev"]["memdev"] for e in eps)
        assert mems == sorted(m for m, s in SWITCH_OF.items() if s == sw["host"]), sw["host"]
        for e in eps:
            assert e["host"] == e["memdev"]["memdev"]


ROOT_DECODERS = {
    "decoder0.0": dict(ram=True, size=1 * GiB, ways=1, targets=1, extent=512 * MiB),
    "decoder0.1": dict(ram=True, size=2 * GiB, ways=2, targets=2, extent=2 * GiB),
    "decoder0.2": dict(ram=False, size=1 * GiB, ways=1, targets=1, extent=1 * GiB),
    "decoder0.3": dict(ram=False, size=2 * GiB, ways=2, targets=2, extent=2 * GiB),
    "decoder0.4": dict(ram=False, size=1 * GiB, ways=1, targets=1, extent=1 * GiB),
    "decoder0.5": dict(ram=True, size=256 * MiB, ways=1, targets=1, extent=256 * MiB),
}


def test_root_decoders(mounted):
    decs = decoders(mounted, "-d", "root")
    assert set(decs) == set(ROOT_DECODERS)
    resources = []
    for name, want in ROOT_DECODERS.items():
        d = decs[name]
        assert d["size"] == want["size"], name
        assert d["interleave_ways"] == want["ways"], name
        assert d["nr_targets"] == want["targets"], name
        assert d["max_available_extent"] == want["extent"], name
        if want["ways"] > 1:
            assert d["interleave_granularity"] == 4096, name
        else:
            assert "interleave_granularity" not in d, name
        if want["ram"]:
            assert d.get("volatile_capable") is True and "pmem_capable" not in d, name
        else:
            assert d.get("pmem_capable") is True and "volatile_capable" not in d, name
        assert "accelmem_capable" not in d
        assert "state" not in d
        resources.append(d["resource"])
    assert resources == sorted(resources)


def test_root_decoder_targets(mounted):
    decs = decoders(mounted, "-d", "root", "-T")
    pos = {t["position"]: t["target"] for t in decs["decoder0.1"]["targets"]}
    assert pos == {0: "cxl_host_bridge.0", 1: "cxl_host_bridge.1"}
    assert [t["target"] for t in decs["decoder0.4"]["targets"]] == ["cxl_host_bridge.2"]
    assert [t["target"] for t in decs["decoder0.5"]["targets"]] == ["cxl_host_bridge.3"]


def test_active_decoders(mounted):
    decs = decoders(mounted)
    sw = port_hosting(mounted, "cxl_switch_uport.0")
    eps = endpoints_by_memdev(mounted)
    ep0, ep4 = eps["mem0"]["endpoint"], eps["mem4"]["endpoint"]
    hb_dec, sw_dec = "decoder1.0", f"decoder{sw[4:]}.0"
    ep_decs = [f"decoder{ep0[8:]}.0", f"decoder{ep4[8:]}.0"]
    assert set(decs) == set(ROOT_DECODERS) | {hb_dec, sw_dec, *ep_decs}
    region_start = decs["decoder0.0"]["resource"]
    assert decs[hb_dec]["interleave_ways"] == 1 and decs[hb_dec]["nr_targets"] == 1
    assert decs[sw_dec]["interleave_ways"] == 2 and decs[sw_dec]["interleave_granularity"] == 4096
    assert decs[sw_dec]["nr_targets"] == 2
    for name in ep_decs:
        d = decs[name]
        assert d["mode"] == "ram"
        assert d["dpa_size"] == 256 * MiB
        assert d["dpa_resource"] == 0
        assert d["interleave_ways"] == 2 and d["interleave_granularity"] == 4096
    for name in (hb_dec, sw_dec, *ep_decs):
        assert decs[name]["resource"] == region_start
        assert decs[name]["size"] == 512 * MiB
        assert decs[name]["region"] == "region0"


def test_switch_decoder_targets(mounted):
    sw = port_hosting(mounted, "cxl_switch_uport.0")
    d = decoders(mounted, "-T")[f"decoder{sw[4:]}.0"]
    assert {t["position"]: t["target"] for t in d["targets"]} == {0: "cxl_switch_dport.0",
                                                                  1: "cxl_switch_dport.4"}


def test_all_decoders_with_idle(mounted):
    decs = decoders(mounted, "-i")
    assert len(decs) == 6 + 8 * (3 + 5 + 11)
    idle = {n for n, d in decs.items() if d.get("state") == "disabled"}
    assert len(idle) == len(decs) - 10
    for n in idle:
        assert "size" not in decs[n] and "resource" not in decs[n], n   # zero size: omitted
        assert decs[n]["interleave_ways"] == 1, n
    eps = {e["endpoint"][8:] for e in endpoints(mounted).values()}
    ep_decs = [d for n, d in decs.items() if n[7:].split(".")[0] in eps]
    assert len(ep_decs) == 8 * 11
    assert sum(d.get("mode") == "ram" for d in ep_decs) == 2


# ==== enable / disable ===============================================================================

def test_disable_enable_memdev(fresh_mount):
    mnt = fresh_mount
    ep = endpoint_of(mnt, "mem1")["endpoint"]
    cxl(mnt, "disable-memdev", "-f", "mem1")
    assert "mem1" not in memdevs(mnt)
    assert memdevs(mnt, "-i")["mem1"]["state"] == "disabled"
    assert endpoint_of(mnt, "mem1") is None
    assert ep not in endpoints(mnt, "-i")
    assert len(memdevs(mnt)) == 10

    cxl(mnt, "enable-memdev", "mem1")
    mems = memdevs(mnt)
    assert "mem1" in mems and "state" not in mems["mem1"]
    e = endpoint_of(mnt, "mem1")
    assert e is not None and e["depth"] == 3 and "state" not in e
    assert len(endpoints(mnt)) == 11


def test_disable_memdev_without_force_is_refused(fresh_mount):
    proc = cxl(fresh_mount, "disable-memdev", "mem1", check=False)
    assert proc.returncode != 0
    assert "mem1" in memdevs(fresh_mount)


def test_switch_port_removed_with_its_last_memdev(fresh_mount):
    mnt = fresh_mount
    host = "cxl_switch_uport.1"                  # mem1 + mem5
    assert port_hosting(mnt, host) is not None
    cxl(mnt, "disable-memdev", "-f", "mem1")
    assert port_hosting(mnt, host) is not None   # mem5 still holds it
    cxl(mnt, "disable-memdev", "-f", "mem5")
    assert port_hosting(mnt, host) is None
    assert port_hosting(mnt, host, "-i") is None
    assert len([p for p in ports(mnt).values() if p["depth"] == 2]) == 4

    cxl(mnt, "enable-memdev", "mem1", "mem5")
    sw = port_hosting(mnt, host)
    assert sw is not None and "state" not in ports(mnt)[sw]
    (top,) = [p for p in collect(cxl_json(mnt, "-P", "-E"), "port") if p["port"] == sw]
    assert sorted(e["host"] for e in top[f"endpoints:{sw}"]) == ["mem1", "mem5"]


def test_disable_switch_port(fresh_mount):
    mnt = fresh_mount
    host = "cxl_switch_uport.1"
    sw = port_hosting(mnt, host)
    cxl(mnt, "disable-port", "-f", sw)
    assert port_hosting(mnt, host, "-i") is None
    mems = memdevs(mnt, "-i")
    assert mems["mem1"]["state"] == "disabled" and mems["mem5"]["state"] == "disabled"
    assert "state" not in mems["mem3"]
    eps = endpoints_by_memdev(mnt, "-i")
    assert "mem1" not in eps and "mem5" not in eps

    cxl(mnt, "enable-memdev", "mem1", "mem5")
    sw = port_hosting(mnt, host)
    assert sw is not None and "state" not in ports(mnt)[sw]
    eps = endpoints_by_memdev(mnt)
    assert "mem1" in eps and "mem5" in eps


def _host_bridge_roundtrip(mnt, hb_port: str, below: list[str], switches: set[str]):
    cxl(mnt, "disable-port", "-f", hb_port)
    ps = ports(mnt, "-i")
    assert ps[hb_port]["state"] == "disabled"
    assert hb_port not in ports(mnt)
    # switch ports below a disabled host bridge are gone (devm of the host-bridge port)
    assert not {p["host"] for p in ps.values()} & switches
    mems = memdevs(mnt, "-i")
    eps = endpoints_by_memdev(mnt, "-i")
    for mem in below:
        assert mems[mem]["state"] == "disabled", mem
        assert mem not in eps, mem
    assert not set(below) & set(memdevs(mnt))
    # enabling a memdev below a disabled port fails
    assert cxl(mnt, "enable-memdev", below[0], check=False).returncode != 0

    cxl(mnt, "enable-port", "-m", hb_port)
    ps = ports(mnt)
    assert hb_port in ps and "state" not in ps[hb_port]
    assert {p["host"] for p in ps.values()} >= switches
    mems = memdevs(mnt)
    eps = endpoints_by_memdev(mnt)
    for mem in below:
        assert mem in mems and "state" not in mems[mem], mem
        assert mem in eps and "state" not in eps[mem], mem
    assert len(eps) == 11


def test_disable_enable_host_bridge_port1(fresh_mount):
    _host_bridge_roundtrip(fresh_mount, "port1", ["mem0", "mem2", "mem4", "mem6"],
                           {"cxl_switch_uport.0", "cxl_switch_uport.2"})


def test_disable_enable_host_bridge_port2(fresh_mount):
    _host_bridge_roundtrip(fresh_mount, "port2", ["mem1", "mem3", "mem5", "mem7"],
                           {"cxl_switch_uport.1", "cxl_switch_uport.3"})


def test_disable_port_without_force_is_refused(fresh_mount):
    proc = cxl(fresh_mount, "disable-port", "port2", check=False)
    assert proc.returncode != 0
    assert "state" not in ports(fresh_mount)["port2"]
    assert "mem1" in memdevs(fresh_mount)


def test_disable_enable_region_member_memdev(fresh_mount):
    """mem0 carries region0: disabling it tears the region's decode down; the memdev and its
    endpoint come back on enable (the region itself is not asserted here)."""
    mnt = fresh_mount
    cxl(mnt, "disable-memdev", "-f", "mem0")
    assert memdevs(mnt, "-i")["mem0"]["state"] == "disabled"
    assert "mem0" not in endpoints_by_memdev(mnt, "-i")
    cxl(mnt, "enable-memdev", "mem0")
    mems = memdevs(mnt)
    assert "mem0" in mems and "state" not in mems["mem0"]
    assert "mem0" in endpoints_by_memdev(mnt)
    assert len(memdevs(mnt)) == 11
