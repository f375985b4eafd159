"""The real Debian `cxl` tool (ndctl 76.1) against the mount (userspace-clients.md §2-§3,
ndctl test/cxl-topology.sh).  Region listings are not asserted yet (the DAX layer is in
progress); memdevs, ports, endpoints and decoders are.

Listing tests share one mount per module and every `cxl list` they need runs in a single
`cxlfs exec` (the ``listed`` fixture); enable/disable tests get a fresh mount each and run
each action together with the listings that check it (``step``)."""
from __future__ import annotations

import pytest

from helpers import by_name, collect, parse_cxl_json, run_batch

pytestmark = [pytest.mark.clients, pytest.mark.fuse, pytest.mark.root]

GiB = 1 << 30
MiB = 1 << 20

SWITCH_OF = {f"mem{i}": f"cxl_switch_uport.{i % 4}" for i in range(8)} | \
    {"mem8": "cxl_switch_uport.4", "mem9": "cxl_switch_uport.4"}


# ---- helpers over parsed `cxl list` output ---------------------------------------------------------

def memdevs(data) -> dict[str, dict]:
    return by_name(collect(data, "memdev"), "memdev")


def ports(data) -> dict[str, dict]:
    return by_name(collect(data, "port"), "port")


def decoders(data) -> dict[str, dict]:
    return by_name(collect(data, "decoder"), "decoder")


def endpoints_by_memdev(data) -> dict[str, dict]:
    return {e["host"]: e for e in collect(data, "endpoint")}


def port_hosting(data, host: str) -> str | None:
    """Name of the port whose uport ("host") is ``host``."""
    return next((name for name, p in ports(data).items() if p["host"] == host), None)


def parsed(proc) -> list:
    assert proc.returncode == 0, f"{' '.join(proc.args)} exited {proc.returncode}: {proc.stderr}"
    return parse_cxl_json(proc.stdout)


def step(mnt: str, action: list[str] | None, *lists: tuple[str, ...], ok: bool = True):
    """``cxl ACTION`` (must succeed when ``ok``, fail otherwise) followed by ``cxl list`` of
    each argument tuple, all in one namespace; returns the parsed listings."""
    cmds = ([["cxl", *action]] if action else []) + [["cxl", "list", *a] for a in lists]
    results = run_batch(mnt, cmds)
    if action:
        done, results = results[0], results[1:]
        if ok:
            assert done.returncode == 0, f"cxl {' '.join(action)}: {done.stderr}"
        else:
            assert done.returncode != 0, f"cxl {' '.join(action)} should have failed"
    out = [parsed(r) for r in results]
    return out[0] if len(out) == 1 else out


# ==== listing (one shared mount, all listings in one exec) ===========================================

SMOKE = [("-M",), ("-P",), ("-D",), ("-E",), ("-T",), ("-u",), ("-R",), ("-B",), ("-b", "cxl_test"),
         ("-M", "-R", "-u", "-b", "cxl_test"), ("-v",), ("-vv",), ("-i", "-D"), ("-D", "-T", "-u")]
LISTS = SMOKE + [("-M", "-u"), ("-M", "-u", "-m", "mem3"), ("-B", "-T"), ("-M", "-b", "root0"), ("-M", "-b", "cxl_test"),
                 ("-M", "-b", "ACPI.CXL"), ("-b", "cxl_test", "-B"), ("-P", "-T"), ("-P", "-E", "-M"),
                 ("-D", "-d", "root"), ("-D", "-d", "root", "-T"), ("-D", "-i")]


@pytest.fixture(scope="module")
def listed(mounted):
    results = run_batch(mounted, [["cxl", "list", *a] for a in LISTS])
    return dict(zip(LISTS, results))


def L(listed, *args) -> list:
    return parsed(listed[args])


@pytest.mark.parametrize("args", SMOKE, ids=[" ".join(a) for a in SMOKE])
def test_list_runs_cleanly(listed, args):
    proc = listed[args]
    assert proc.returncode == 0, proc.stderr
    assert "failed" not in proc.stderr and "error" not in proc.stderr.lower(), proc.stderr
    assert parse_cxl_json(proc.stdout)          # valid, non-empty JSON


def test_list_memdevs(listed):
    mems = memdevs(L(listed, "-M"))
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


def test_list_memdevs_human(listed):
    mems = memdevs(L(listed, "-M", "-u"))
    assert mems["mem0"]["serial"] == "0x1"
    assert mems["mem9"]["serial"] == "0xa"
    assert mems["mem0"]["pmem_size"] == "1024.00 MiB (1073.74 MB)"
    assert mems["mem0"]["ram_size"] == "1024.00 MiB (1073.74 MB)"
    assert mems["mem10"]["ram_size"] == "2.00 GiB (2.15 GB)"
    one = L(listed, "-M", "-u", "-m", "mem3")    # a lone object, not an array
    assert [m["memdev"] for m in one] == ["mem3"]


def test_list_bus(listed):
    (bus,) = collect(L(listed, "-B"), "bus")
    assert bus == {"bus": "root0", "provider": "cxl_test"}
    (bus,) = collect(L(listed, "-B", "-T"), "bus")
    assert bus["nr_dports"] == 4
    assert {d["id"]: d["dport"] for d in bus["dports"]} == {i: f"cxl_host_bridge.{i}" for i in range(4)}


def test_bus_filter_by_provider(listed):
    assert len(memdevs(L(listed, "-M", "-b", "cxl_test"))) == 11
    assert len(memdevs(L(listed, "-M", "-b", "root0"))) == 11
    assert memdevs(L(listed, "-M", "-b", "ACPI.CXL")) == {}
    assert [b["provider"] for b in collect(L(listed, "-b", "cxl_test", "-B"), "bus")] == ["cxl_test"]


def test_list_ports(listed):
    ps = ports(L(listed, "-P"))
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
def test_switch_ports_under_each_host_bridge(listed, hb, switches):
    top = ports(L(listed, "-P"))[hb]
    children = top.get(f"ports:{hb}", [])
    assert {c["host"] for c in children} == switches
    assert all(c["depth"] == 2 for c in children)


def test_port_dports(listed):
    expect = {"cxl_host_bridge.0": {0: "cxl_root_port.0", 2: "cxl_root_port.2"},
              "cxl_host_bridge.1": {1: "cxl_root_port.1", 3: "cxl_root_port.3"},
              "cxl_host_bridge.2": {4: "cxl_root_port.4"}}
    for p in ports(L(listed, "-P", "-T")).values():
        got = {d["id"]: d["dport"] for d in p["dports"]}
        assert p["nr_dports"] == len(got)
        if p["depth"] == 1:
            assert got == expect[p["host"]]
        else:
            i = int(p["host"].rsplit(".", 1)[1])
            ids = [8, 9] if i == 4 else [i, i + 4]
            assert got == {n: f"cxl_switch_dport.{n}" for n in ids}


def test_list_endpoints(listed):
    eps = collect(L(listed, "-E"), "endpoint")
    assert sorted(e["host"] for e in eps) == sorted(f"mem{i}" for i in range(11))
    for e in eps:
        assert e["depth"] == (1 if e["host"] == "mem10" else 3)
        assert "state" not in e


def test_endpoints_nest_under_their_switch_and_carry_memdevs(listed):
    data = L(listed, "-P", "-E", "-M")
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


def test_root_decoders(listed):
    decs = decoders(L(listed, "-D", "-d", "root"))
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


def test_root_decoder_targets(listed):
    decs = decoders(L(listed, "-D", "-d", "root", "-T"))
    pos = {t["position"]: t["target"] for t in decs["decoder0.1"]["targets"]}
    assert pos == {0: "cxl_host_bridge.0", 1: "cxl_host_bridge.1"}
    assert [t["target"] for t in decs["decoder0.4"]["targets"]] == ["cxl_host_bridge.2"]
    assert [t["target"] for t in decs["decoder0.5"]["targets"]] == ["cxl_host_bridge.3"]


def test_active_decoders(listed):
    decs = decoders(L(listed, "-D"))
    sw = port_hosting(L(listed, "-P"), "cxl_switch_uport.0")
    eps = endpoints_by_memdev(L(listed, "-E"))
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


def test_switch_decoder_targets(listed):
    sw = port_hosting(L(listed, "-P"), "cxl_switch_uport.0")
    d = decoders(L(listed, "-D", "-T", "-u"))[f"decoder{sw[4:]}.0"]
    assert {t["position"]: t["target"] for t in d["targets"]} == {0: "cxl_switch_dport.0",
                                                                  1: "cxl_switch_dport.4"}


def test_all_decoders_with_idle(listed):
    decs = decoders(L(listed, "-D", "-i"))
    assert len(decs) == 6 + 8 * (3 + 5 + 11)
    idle = {n for n, d in decs.items() if d.get("state") == "disabled"}
    assert len(idle) == len(decs) - 10
    for n in idle:
        assert "size" not in decs[n] and "resource" not in decs[n], n   # zero size: omitted
        assert decs[n]["interleave_ways"] == 1, n
    eps = {e["endpoint"][8:] for e in collect(L(listed, "-E"), "endpoint")}
    ep_decs = [d for n, d in decs.items() if n[7:].split(".")[0] in eps]
    assert len(ep_decs) == 8 * 11
    assert sum(d.get("mode") == "ram" for d in ep_decs) == 2


# ==== enable / disable (a fresh mount per test) ======================================================

def test_disable_enable_memdev(fresh_mount):
    mnt = fresh_mount
    ep = endpoints_by_memdev(step(mnt, None, ("-E",)))["mem1"]["endpoint"]
    m, mi, ei = step(mnt, ["disable-memdev", "-f", "mem1"], ("-M",), ("-M", "-i"), ("-E", "-i"))
    assert "mem1" not in memdevs(m) and len(memdevs(m)) == 10
    assert memdevs(mi)["mem1"]["state"] == "disabled"
    assert "mem1" not in endpoints_by_memdev(ei)
    assert ep not in {e["endpoint"] for e in collect(ei, "endpoint")}

    m, e = step(mnt, ["enable-memdev", "mem1"], ("-M",), ("-E",))
    assert "mem1" in memdevs(m) and "state" not in memdevs(m)["mem1"]
    e = endpoints_by_memdev(e)
    assert e["mem1"]["depth"] == 3 and "state" not in e["mem1"]
    assert len(e) == 11


def test_disable_memdev_without_force_is_refused(fresh_mount):
    m = step(fresh_mount, ["disable-memdev", "mem1"], ("-M",), ok=False)
    assert "mem1" in memdevs(m)


def test_switch_port_removed_with_its_last_memdev(fresh_mount):
    mnt = fresh_mount
    host = "cxl_switch_uport.1"                   # mem1 + mem5
    p = step(mnt, ["disable-memdev", "-f", "mem1"], ("-P",))
    assert port_hosting(p, host) is not None      # mem5 still holds it
    p, pi = step(mnt, ["disable-memdev", "-f", "mem5"], ("-P",), ("-P", "-i"))
    assert port_hosting(p, host) is None and port_hosting(pi, host) is None
    assert len([x for x in ports(p).values() if x["depth"] == 2]) == 4

    p, pe = step(mnt, ["enable-memdev", "mem1", "mem5"], ("-P",), ("-P", "-E"))
    sw = port_hosting(p, host)
    assert sw is not None and "state" not in ports(p)[sw]
    assert sorted(e["host"] for e in ports(pe)[sw][f"endpoints:{sw}"]) == ["mem1", "mem5"]


def test_disable_switch_port(fresh_mount):
    mnt = fresh_mount
    host = "cxl_switch_uport.1"
    sw = port_hosting(step(mnt, None, ("-P",)), host)
    pi, mi, ei = step(mnt, ["disable-port", "-f", sw], ("-P", "-i"), ("-M", "-i"), ("-E", "-i"))
    assert port_hosting(pi, host) is None
    mems = memdevs(mi)
    assert mems["mem1"]["state"] == "disabled" and mems["mem5"]["state"] == "disabled"
    assert "state" not in mems["mem3"]
    eps = endpoints_by_memdev(ei)
    assert "mem1" not in eps and "mem5" not in eps

    p, e = step(mnt, ["enable-memdev", "mem1", "mem5"], ("-P",), ("-E",))
    sw = port_hosting(p, host)
    assert sw is not None and "state" not in ports(p)[sw]
    eps = endpoints_by_memdev(e)
    assert "mem1" in eps and "mem5" in eps


def _host_bridge_roundtrip(mnt, hb_port: str, below: list[str], switches: set[str]):
    pi, p, mi, m, ei = step(mnt, ["disable-port", "-f", hb_port],
                            ("-P", "-i"), ("-P",), ("-M", "-i"), ("-M",), ("-E", "-i"))
    assert ports(pi)[hb_port]["state"] == "disabled"
    assert hb_port not in ports(p)
    # switch ports below a disabled host bridge are gone (devm of the host-bridge port)
    assert not {x["host"] for x in ports(pi).values()} & switches
    eps = endpoints_by_memdev(ei)
    for mem in below:
        assert memdevs(mi)[mem]["state"] == "disabled", mem
        assert mem not in eps, mem
    assert not set(below) & set(memdevs(m))
    # enabling a memdev below a disabled port fails
    step(mnt, ["enable-memdev", below[0]], ok=False)

    p, m, e = step(mnt, ["enable-port", "-m", hb_port], ("-P",), ("-M",), ("-E",))
    assert hb_port in ports(p) and "state" not in ports(p)[hb_port]
    assert {x["host"] for x in ports(p).values()} >= switches
    eps = endpoints_by_memdev(e)
    for mem in below:
        assert mem in memdevs(m) and "state" not in memdevs(m)[mem], mem
        assert mem in eps and "state" not in eps[mem], mem
    assert len(eps) == 11


def test_disable_enable_host_bridge_port1(fresh_mount):
    _host_bridge_roundtrip(fresh_mount, "port1", ["mem0", "mem2", "mem4", "mem6"],
                           {"cxl_switch_uport.0", "cxl_switch_uport.2"})


def test_disable_enable_host_bridge_port2(fresh_mount):
    _host_bridge_roundtrip(fresh_mount, "port2", ["mem1", "mem3", "mem5", "mem7"],
                           {"cxl_switch_uport.1", "cxl_switch_uport.3"})


def test_disable_port_without_force_is_refused(fresh_mount):
    p, m = step(fresh_mount, ["disable-port", "port2"], ("-P",), ("-M",), ok=False)
    assert "state" not in ports(p)["port2"]
    assert "mem1" in memdevs(m)


def test_disable_enable_region_member_memdev(fresh_mount):
    """mem0 carries region0: disabling it tears the region's decode down; the memdev and its
    endpoint come back on enable (the region itself is not asserted here)."""
    mnt = fresh_mount
    mi, ei = step(mnt, ["disable-memdev", "-f", "mem0"], ("-M", "-i"), ("-E", "-i"))
    assert memdevs(mi)["mem0"]["state"] == "disabled"
    assert "mem0" not in endpoints_by_memdev(ei)
    m, e = step(mnt, ["enable-memdev", "mem0"], ("-M",), ("-E",))
    assert "mem0" in memdevs(m) and "state" not in memdevs(m)["mem0"]
    assert "mem0" in endpoints_by_memdev(e)
    assert len(memdevs(m)) == 11
