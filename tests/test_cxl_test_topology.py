"""The default topology is the kernel's cxl_test (kernel-abi.md §9, ndctl test/cxl-topology.sh),
checked on the in-process model."""
from __future__ import annotations

import errno

import pytest

DEV = "/bus/cxl/devices"
ROOT = "/devices/platform/cxl_acpi.0/root0"
GiB = 1 << 30
MiB = 1 << 20

# memdev -> (platform device, switch uport above it or None, host bridge)
MEMDEVS = {f"mem{i}": (f"cxl_mem.{i}", f"cxl_switch_uport.{i % 4}", f"cxl_host_bridge.{i % 2}")
           for i in range(8)}
MEMDEVS |= {"mem8": ("cxl_mem.8", "cxl_switch_uport.4", "cxl_host_bridge.2"),
            "mem9": ("cxl_mem.9", "cxl_switch_uport.4", "cxl_host_bridge.2"),
            "mem10": ("cxl_rcd.10", None, "cxl_host_bridge.3")}


def children(k, path, prefix):
    return sorted((n for n in k.ls(path) if n.startswith(prefix) and not n.startswith(prefix + "s")),
                  key=lambda n: [int(x) for x in n[len(prefix):].split(".") if x.isdigit()])


def decoders_of(k, port):
    return [n for n in k.ls(f"{DEV}/{port}") if n.startswith("decoder") and "." in n]


# ---- root0 and host bridges ---------------------------------------------------------------------

def test_root0_is_published_by_cxl_acpi_0(k):
    assert k.path(f"{DEV}/root0") == ROOT
    assert k.resolve(f"{DEV}/root0/uport").name == "cxl_acpi.0"   # -> provider "cxl_test"
    assert k.resolve("/devices/platform/cxl_acpi.0/driver").name == "cxl_acpi"
    assert not k.exists(f"{DEV}/root0/driver")
    assert not k.exists(f"{DEV}/root0/parent_dport")
    assert k.val(f"{DEV}/root0/devtype") == "cxl_port"


def test_root0_has_four_host_bridge_dports(k):
    dports = children(k, ROOT, "dport")
    assert dports == ["dport0", "dport1", "dport2", "dport3"]
    for i in range(4):
        assert k.resolve(f"{ROOT}/dport{i}").name == f"cxl_host_bridge.{i}"
    # libcxl realpath()s dportN/physical_node (firmware_node for the RCH)
    for i in range(3):
        assert k.path(f"{ROOT}/dport{i}/physical_node") == f"/devices/platform/cxl_host_bridge.{i}"
    assert k.path(f"{ROOT}/dport3/firmware_node") == "/devices/platform/cxl_host_bridge.3"


def test_host_bridge_ports_are_port1_to_port3(k):
    hb_ports = children(k, ROOT, "port")
    assert hb_ports == ["port1", "port2", "port3"]
    for i, port in enumerate(hb_ports):
        assert k.resolve(f"{ROOT}/{port}/uport").name == f"cxl_host_bridge.{i}"
        assert k.resolve(f"{ROOT}/{port}/parent_dport").name == f"cxl_host_bridge.{i}"
        assert k.is_bound(port)
    # the RCH has a dport under root0 but no port; the RCD's endpoint hangs off root0
    assert k.port_by_uport("cxl_host_bridge.3") is None
    (ep,) = children(k, ROOT, "endpoint")
    assert k.resolve(f"{ROOT}/{ep}/uport").name == "mem10"


@pytest.mark.parametrize("port,dports", [("port1", {0: "cxl_root_port.0", 2: "cxl_root_port.2"}),
                                         ("port2", {1: "cxl_root_port.1", 3: "cxl_root_port.3"}),
                                         ("port3", {4: "cxl_root_port.4"})])
def test_host_bridge_dports(k, port, dports):
    names = children(k, f"{DEV}/{port}", "dport")
    assert names == [f"dport{i}" for i in sorted(dports)]
    for i, rp in dports.items():
        assert k.resolve(f"{DEV}/{port}/dport{i}").name == rp


# ---- switches ------------------------------------------------------------------------------------

@pytest.mark.parametrize("hb_port,uports", [("port1", ["cxl_switch_uport.0", "cxl_switch_uport.2"]),
                                            ("port2", ["cxl_switch_uport.1", "cxl_switch_uport.3"]),
                                            ("port3", ["cxl_switch_uport.4"])])
def test_switch_ports_under_each_host_bridge(k, hb_port, uports):
    sw = children(k, f"{DEV}/{hb_port}", "port")
    assert sorted(k.resolve(f"{DEV}/{hb_port}/{p}/uport").name for p in sw) == uports
    for p in sw:
        assert k.is_bound(p)
        assert k.val(f"{DEV}/{p}/devtype") == "cxl_port"


@pytest.mark.parametrize("uport,dport_ids", [(f"cxl_switch_uport.{i}", [i, i + 4]) for i in range(4)]
                         + [("cxl_switch_uport.4", [8, 9])])
def test_switch_port_dports(k, uport, dport_ids):
    port = k.port_by_uport(uport)
    assert port is not None
    assert children(k, f"{DEV}/{port}", "dport") == [f"dport{i}" for i in dport_ids]
    for i in dport_ids:
        assert k.resolve(f"{DEV}/{port}/dport{i}").name == f"cxl_switch_dport.{i}"


def test_switch_ports_count(k):
    switch_ports = [p for p in k.cxl_devices("port")
                    if k.resolve(f"{DEV}/{p}/uport").name.startswith("cxl_switch_uport.")]
    assert len(switch_ports) == 5


def test_every_port_has_8_decoders(k):
    for port in k.cxl_devices("port") + k.cxl_devices("endpoint"):
        n = port[4:] if port.startswith("port") else port[8:]
        assert decoders_of(k, port) == [f"decoder{n}.{i}" for i in range(8)], port


# ---- memdevs -----------------------------------------------------------------------------------------

def test_eleven_memdevs(k):
    assert sorted(k.cxl_devices("mem"), key=lambda n: int(n[3:])) == [f"mem{i}" for i in range(11)]


@pytest.mark.parametrize("mem", sorted(MEMDEVS, key=lambda n: int(n[3:])))
def test_memdev_attributes(k, kernel, mem):
    i = int(mem[3:])
    pdev, uport, hb = MEMDEVS[mem]
    base = f"{DEV}/{mem}"
    assert k.val(f"{base}/serial") == hex(i + 1)
    assert k.val(f"{base}/numa_node") == ("0" if i == 10 else str(i % 2))
    assert k.val(f"{base}/firmware_version") == "mock fw v1 "
    assert k.val(f"{base}/payload_max") == "4096"
    assert k.val(f"{base}/label_storage_size") == "131072"
    assert k.val(f"{base}/dev") == f"{kernel.majors.cxl}:{i}"
    assert k.val(f"{base}/security/state") == "disabled"
    if i == 10:          # the RCD: 2 GiB volatile only
        assert k.val(f"{base}/ram/size") == hex(2 * GiB)
        assert k.val(f"{base}/pmem/size") == "0x0"
        assert not k.exists(f"{base}/pmem/qos_class")
    else:
        assert k.val(f"{base}/ram/size") == hex(GiB)
        assert k.val(f"{base}/pmem/size") == hex(GiB)
        assert k.val(f"{base}/pmem/qos_class") == "42"
    assert k.val(f"{base}/ram/qos_class") == "42"
    # host path: memN sits below its platform device, below every port device above it
    real = k.path(base)
    assert real.endswith(f"/{pdev}/{mem}")
    assert f"/{hb}/" in real
    if uport:
        assert f"/{uport}/" in real
    assert k.is_bound(mem)
    assert k.resolve(f"{base}/driver").name == "cxl_mem"


@pytest.mark.parametrize("mem", sorted(MEMDEVS, key=lambda n: int(n[3:])))
def test_memdev_endpoint_placement(k, mem):
    pdev, uport, hb = MEMDEVS[mem]
    ep = k.port_by_uport(mem)
    assert ep is not None and ep.startswith("endpoint")
    parent = k.resolve(f"{DEV}/{ep}").parent
    if uport is None:
        assert parent.name == "root0"
    else:
        assert k.resolve(f"{DEV}/{parent.name}/uport").name == uport
        assert k.resolve(f"{DEV}/{ep}/parent_dport").name == f"cxl_switch_dport.{int(mem[3:])}"
    assert k.is_bound(ep)


def test_pmem_capable_memdevs_have_nvdimm_children(k):
    for i in range(10):
        assert k.exists(f"{DEV}/mem{i}/pmem{i}")
    assert not any(n.startswith("pmem") and n[4:].isdigit() for n in k.ls(f"{DEV}/mem10"))


# ---- root decoders -----------------------------------------------------------------------------------

ROOT_DECODERS = [
    # name, cap_ram, cap_pmem, size, ways, granularity, targets
    ("decoder0.0", 1, 0, 1 * GiB, 1, 256, "0"),
    ("decoder0.1", 1, 0, 2 * GiB, 2, 4096, "0,1"),
    ("decoder0.2", 0, 1, 1 * GiB, 1, 256, "0"),
    ("decoder0.3", 0, 1, 2 * GiB, 2, 4096, "0,1"),
    ("decoder0.4", 0, 1, 1 * GiB, 1, 256, "2"),
    ("decoder0.5", 1, 0, 256 * MiB, 1, 256, "3"),
]


def test_root_decoder_names(k):
    assert decoders_of(k, "root0") == [d[0] for d in ROOT_DECODERS]


@pytest.mark.parametrize("name,ram,pmem,size,ways,gran,targets", ROOT_DECODERS)
def test_root_decoder(k, name, ram, pmem, size, ways, gran, targets):
    base = f"{DEV}/{name}"
    assert k.val(f"{base}/devtype") == "cxl_decoder_root"
    assert k.val(f"{base}/cap_ram") == str(ram)
    assert k.val(f"{base}/cap_pmem") == str(pmem)
    assert k.val(f"{base}/cap_type3") == "1"
    assert k.val(f"{base}/cap_type2") == "0"
    assert k.val(f"{base}/locked") == "0"
    assert k.val(f"{base}/qos_class") == "42"
    assert k.val(f"{base}/size") == hex(size)
    assert k.val(f"{base}/interleave_ways") == str(ways)
    assert k.val(f"{base}/interleave_granularity") == str(gran)
    assert k.val(f"{base}/target_list") == targets
    start = int(k.val(f"{base}/start"), 16)
    assert start % (256 * MiB) == 0 and start > 0
    assert k.mode(f"{base}/start") == 0o400
    # create_ram_region only on RAM windows, create_pmem_region only on PMEM windows
    assert k.exists(f"{base}/create_ram_region") == bool(ram)
    assert k.exists(f"{base}/create_pmem_region") == bool(pmem)
    assert k.mode(f"{base}/delete_region") == 0o200
    create = f"{base}/create_{'ram' if ram else 'pmem'}_region"
    assert k.mode(create) == 0o644


def test_root_decoder_windows_do_not_overlap(k):
    ranges = sorted((int(k.val(f"{DEV}/{d[0]}/start"), 16), d[3]) for d in ROOT_DECODERS)
    for (s1, z1), (s2, _) in zip(ranges, ranges[1:]):
        assert s1 + z1 <= s2


def test_create_region_names_at_boot(k):
    # each root decoder pre-allocates a memregion id; the auto region consumed decoder0.0's
    assert k.val(f"{DEV}/decoder0.0/create_ram_region") == "region6"
    assert k.val(f"{DEV}/decoder0.1/create_ram_region") == "region1"
    assert k.val(f"{DEV}/decoder0.2/create_pmem_region") == "region2"
    assert k.val(f"{DEV}/decoder0.3/create_pmem_region") == "region3"
    assert k.val(f"{DEV}/decoder0.4/create_pmem_region") == "region4"
    assert k.val(f"{DEV}/decoder0.5/create_ram_region") == "region5"


def test_create_region_stale_name_is_ebusy(k):
    assert k.errno_of(f"{DEV}/decoder0.1/create_ram_region", "region7") == errno.EBUSY
    assert k.errno_of(f"{DEV}/decoder0.1/create_ram_region", "foo") == errno.EINVAL
    assert k.echo(f"{DEV}/decoder0.1/create_ram_region", b"region1\0") == 8
    assert k.exists(f"{ROOT}/decoder0.1/region1")
    assert k.val(f"{DEV}/decoder0.1/create_ram_region") == "region7"


# ---- the auto-assembled region0 ----------------------------------------------------------------------

def test_region0_auto_assembled(k):
    base = f"{ROOT}/decoder0.0/region0"
    assert k.exists(base)
    assert k.val(f"{base}/commit") == "1"
    assert k.val(f"{base}/size") == hex(512 * MiB)
    assert k.val(f"{base}/interleave_ways") == "2"
    assert k.val(f"{base}/interleave_granularity") == "4096"
    assert k.val(f"{base}/mode") == "ram"
    assert k.val(f"{base}/uuid") == ""
    assert k.val(f"{base}/resource") == k.val(f"{DEV}/decoder0.0/start")
    ep0, ep4 = k.port_by_uport("mem0"), k.port_by_uport("mem4")
    assert k.val(f"{base}/target0") == f"decoder{ep0[8:]}.0"
    assert k.val(f"{base}/target1") == f"decoder{ep4[8:]}.0"
    assert not k.exists(f"{base}/target2")


@pytest.mark.parametrize("mem,pos", [("mem0", 0), ("mem4", 1)])
def test_region0_endpoint_decoders(k, mem, pos):
    ep = k.port_by_uport(mem)
    dec = f"{DEV}/decoder{ep[8:]}.0"
    assert k.val(f"{dec}/region") == "region0"
    assert k.val(f"{dec}/mode") == "ram"
    assert k.val(f"{dec}/dpa_size") == "0x0000000010000000"
    assert k.val(f"{dec}/dpa_resource") == "0x0"
    assert k.val(f"{dec}/size") == hex(512 * MiB)
    assert k.val(f"{dec}/start") == k.val(f"{DEV}/decoder0.0/start")
    assert k.val(f"{dec}/interleave_ways") == "2"
    assert k.val(f"{dec}/interleave_granularity") == "4096"
    assert k.val(f"{dec}/target_type") == "expander"


def test_region0_switch_and_host_bridge_decoders(k):
    sw = k.port_by_uport("cxl_switch_uport.0")
    swd = f"{DEV}/decoder{sw[4:]}.0"
    assert k.val(f"{swd}/interleave_ways") == "2"
    assert k.val(f"{swd}/target_list") == "0,4"
    assert k.val(f"{swd}/region") == "region0"
    assert k.val(f"{swd}/size") == hex(512 * MiB)
    hbd = f"{DEV}/decoder1.0"
    assert k.val(f"{hbd}/interleave_ways") == "1"
    assert k.val(f"{hbd}/target_list") == "0"
    assert k.val(f"{hbd}/region") == "region0"
    assert k.val(f"{hbd}/size") == hex(512 * MiB)


def test_decoders_committed(k):
    committed = {"port1", k.port_by_uport("cxl_switch_uport.0"), k.port_by_uport("mem0"),
                 k.port_by_uport("mem4")}
    ports = ["root0"] + k.cxl_devices("port") + k.cxl_devices("endpoint")
    assert len(ports) == 1 + 3 + 5 + 11
    for port in ports:
        assert k.val(f"{DEV}/{port}/decoders_committed") == ("1" if port in committed else "0"), port


def test_idle_decoders(k):
    ep = k.port_by_uport("mem2")
    for i in range(8):
        dec = f"{DEV}/decoder{ep[8:]}.{i}"
        assert k.val(f"{dec}/devtype") == "cxl_decoder_endpoint"
        assert k.val(f"{dec}/mode") == "none"
        assert k.val(f"{dec}/dpa_size") == "0x0000000000000000"
        assert k.val(f"{dec}/dpa_resource") == "0xffffffffffffffff"
        assert k.val(f"{dec}/region") == ""
        assert k.val(f"{dec}/size") == "0x0"
        assert k.val(f"{dec}/start") == "0x0"
        assert k.val(f"{dec}/interleave_ways") == "1"
        assert k.val(f"{dec}/interleave_granularity") == "256"
        assert k.val(f"{dec}/locked") == "0"
        assert k.mode(f"{dec}/mode") == 0o644 and k.mode(f"{dec}/dpa_size") == 0o644
    for i in range(8):
        dec = f"{DEV}/decoder2.{i}"
        assert k.val(f"{dec}/devtype") == "cxl_decoder_switch"
        assert k.val(f"{dec}/size") == "0x0"
        assert k.val(f"{dec}/interleave_granularity") == "256"
        assert k.val(f"{dec}/target_type") == "expander"
        assert k.val(f"{dec}/region") == ""


# ---- cxl-topology.sh semantics, in process -----------------------------------------------------------

def test_switch_port_goes_with_its_last_memdev(k):
    sw = k.port_by_uport("cxl_switch_uport.1")       # mem1 + mem5
    k.echo("/bus/cxl/drivers/cxl_mem/unbind", "mem1")
    assert k.exists(f"{DEV}/{sw}")
    k.echo("/bus/cxl/drivers/cxl_mem/unbind", "mem5")
    assert k.port_by_uport("cxl_switch_uport.1") is None
    k.echo("/bus/cxl/drivers/cxl_mem/bind", "mem1")
    k.echo("/bus/cxl/drivers/cxl_mem/bind", "mem5")
    sw = k.port_by_uport("cxl_switch_uport.1")
    assert sw is not None and k.is_bound(sw)
    assert k.resolve(f"{DEV}/{k.port_by_uport('mem1')}").parent.name == sw


def test_unbinding_host_bridge_port_detaches_everything_below(k):
    below = ["mem1", "mem3", "mem5", "mem7"]
    k.echo("/bus/cxl/drivers/cxl_port/unbind", "port2")
    assert k.exists(f"{DEV}/port2") and not k.is_bound("port2")
    assert not children(k, f"{DEV}/port2", "port")
    assert not decoders_of(k, "port2")
    assert not children(k, f"{DEV}/port2", "dport")
    for mem in below:
        assert not k.is_bound(mem), mem
        assert k.port_by_uport(mem) is None
    k.echo("/bus/cxl/drivers/cxl_port/bind", "port2")
    assert children(k, f"{DEV}/port2", "dport") == ["dport1", "dport3"]
    assert len(decoders_of(k, "port2")) == 8
    for mem in below:
        k.echo("/bus/cxl/drivers/cxl_mem/bind", mem)
        assert k.port_by_uport(mem) is not None


def test_unbinding_host_bridge_of_region0_tears_it_down(k):
    k.echo("/bus/cxl/drivers/cxl_port/unbind", "port1")
    for mem in ("mem0", "mem2", "mem4", "mem6"):
        assert not k.is_bound(mem), mem
    assert k.val("/bus/cxl/devices/decoder0.0/region0/commit") == "0"
    assert not k.exists("/bus/cxl/devices/decoder0.0/region0/target0") or \
        k.val("/bus/cxl/devices/decoder0.0/region0/target0") == ""
    assert k.val("/bus/cxl/devices/port1/decoders_committed") == "0"


def test_cxl_acpi_rebind_rescans_memdevs(k):
    k.echo("/bus/platform/drivers/cxl_acpi/unbind", "cxl_acpi.0")
    assert k.cxl_devices("root") == [] and k.cxl_devices("port") == []
    assert not any(k.is_bound(f"mem{i}") for i in range(11))
    k.echo("/bus/platform/drivers/cxl_acpi/bind", "cxl_acpi.0")
    assert k.cxl_devices("root") == ["root0"]
    assert [m for m in (f"mem{i}" for i in range(11)) if not k.is_bound(m)] == []
    assert len(k.cxl_devices("endpoint")) == 11
    assert len(k.cxl_devices("port")) == 3 + 5


def test_cxl_acpi_unbind_removes_the_whole_cxl_tree(k):
    k.echo("/bus/platform/drivers/cxl_acpi/unbind", "cxl_acpi.0")
    left = k.cxl_devices()
    assert sorted(left, key=lambda n: int(n[3:])) == [f"mem{i}" for i in range(11)]
    assert not any(k.is_bound(m) for m in left)
    assert not k.exists("/devices/platform/cxl_acpi.0/root0")
