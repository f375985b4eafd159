"""Regions and HDM decoders on the in-process model: every wrong write gets the errno
drivers/cxl/core/region.c returns, and changes nothing (kernel-abi.md §2.4, §2.6, §11)."""
from __future__ import annotations

import errno

import pytest

from helpers import KernelView

CXL = "/bus/cxl/devices"


def snapshot(k: KernelView, *devs: str) -> dict[str, str]:
    """Every readable attribute of the devices, plus which devices exist."""
    out = {"devices": " ".join(sorted(k.cxl_devices()))}
    for dev in devs:
        if not k.exists(f"{CXL}/{dev}"):
            continue
        for name in k.ls(f"{CXL}/{dev}"):
            path = f"{CXL}/{dev}/{name}"
            node = k.node(path)
            if node.__class__.__name__ == "KAttr" and node.mode & 0o444 and name != "uevent":
                out[f"{dev}/{name}"] = k.cat(path)
    return out


def endpoint_decoder(k: KernelView, memdev: str, index: int) -> str:
    ep = k.port_by_uport(memdev)
    return f"decoder{ep.removeprefix('endpoint')}.{index}"


def new_region(k: KernelView, root: str = "decoder0.1", kind: str = "ram") -> str:
    name = k.val(f"{CXL}/{root}/create_{kind}_region")
    k.echo(f"{CXL}/{root}/create_{kind}_region", name + "\0")
    return name


def sized_region(k: KernelView, root="decoder0.1", ways=2, gran=4096, size=2 << 30) -> str:
    r = new_region(k, root)
    k.echo(f"{CXL}/{r}/interleave_granularity", str(gran))
    k.echo(f"{CXL}/{r}/interleave_ways", str(ways))
    k.echo(f"{CXL}/{r}/size", hex(size))
    return r


def alloc(k: KernelView, memdev: str, index: int, size: int, mode: str = "ram") -> str:
    d = endpoint_decoder(k, memdev, index)
    k.echo(f"{CXL}/{d}/mode", mode)
    k.echo(f"{CXL}/{d}/dpa_size", hex(size))
    return d


def check_refused(k: KernelView, path: str, value: str, err: int, *devs: str) -> None:
    before = snapshot(k, *devs)
    got = k.errno_of(path, value)
    assert got == err, f"{path} <- {value!r}: expected {errno.errorcode[err]}, got " \
                       f"{errno.errorcode.get(got, got) if got else 'success'}"
    assert snapshot(k, *devs) == before, f"{path} <- {value!r} changed the model"


# ==== create / delete =============================================================================

def test_create_ram_region_reservation(k):
    root = f"{CXL}/decoder0.1"
    offered = k.val(f"{root}/create_ram_region")
    assert offered == "region1"
    check_refused(k, f"{root}/create_ram_region", "region9", errno.EBUSY, "decoder0.1")
    check_refused(k, f"{root}/create_ram_region", "garbage", errno.EINVAL, "decoder0.1")
    k.echo(f"{root}/create_ram_region", "region1\0")
    assert k.exists(f"{root}/region1") and k.exists(f"{CXL}/region1")
    assert k.val(f"{root}/create_ram_region") != "region1"
    assert k.val(f"{CXL}/region1/mode") == "ram"
    assert k.val(f"{CXL}/region1/resource") == "0xffffffffffffffff"
    assert k.val(f"{CXL}/region1/size") == "0x0"
    assert k.val(f"{CXL}/region1/interleave_ways") == "0"
    assert not k.is_bound("region1")      # autoprobe failed quietly: not committed


def test_create_attrs_follow_window_caps(k):
    assert k.exists(f"{CXL}/decoder0.0/create_ram_region")
    assert not k.exists(f"{CXL}/decoder0.0/create_pmem_region")
    assert k.exists(f"{CXL}/decoder0.2/create_pmem_region")
    assert not k.exists(f"{CXL}/decoder0.2/create_ram_region")
    assert k.mode(f"{CXL}/decoder0.2/delete_region") == 0o200


def test_delete_region(k):
    r = new_region(k)
    check_refused(k, f"{CXL}/decoder0.1/delete_region", "region42", errno.ENODEV, "decoder0.1")
    check_refused(k, f"{CXL}/decoder0.0/delete_region", r, errno.ENODEV, "decoder0.0")
    k.echo(f"{CXL}/decoder0.1/delete_region", r + "\n")
    assert not k.exists(f"{CXL}/{r}")
    # the released id is the lowest: it is offered again
    assert k.val(f"{CXL}/decoder0.1/create_ram_region") == r


# ==== geometry ===================================================================================

@pytest.mark.parametrize("value,err", [("abc", errno.EINVAL), ("300", errno.EINVAL),
                                       ("128", errno.EINVAL), ("32768", errno.EINVAL),
                                       ("512", errno.EINVAL),        # x2 root: must equal 4096
                                       ("99999999999", errno.ERANGE)])
def test_interleave_granularity_refused(k, value, err):
    r = new_region(k)
    check_refused(k, f"{CXL}/{r}/interleave_granularity", value, err, r)


@pytest.mark.parametrize("value,err", [("0", errno.EINVAL), ("5", errno.EINVAL), ("-2", errno.EINVAL),
                                       ("1", errno.EINVAL),          # not a multiple of root ways 2
                                       ("x", errno.EINVAL)])
def test_interleave_ways_refused(k, value, err):
    r = new_region(k)
    check_refused(k, f"{CXL}/{r}/interleave_ways", value, err, r)


def test_ways_show_target_files(k):
    r = new_region(k)
    assert not any(n.startswith("target") for n in k.ls(f"{CXL}/{r}"))
    k.echo(f"{CXL}/{r}/interleave_ways", "4")
    assert sorted(n for n in k.ls(f"{CXL}/{r}") if n.startswith("target")) == \
        ["target0", "target1", "target2", "target3"]
    k.echo(f"{CXL}/{r}/interleave_ways", "2")
    assert sorted(n for n in k.ls(f"{CXL}/{r}") if n.startswith("target")) == ["target0", "target1"]


def test_size_rules(k):
    r = new_region(k)
    check_refused(k, f"{CXL}/{r}/size", "0x80000000", errno.ENXIO, r)    # no geometry yet
    k.echo(f"{CXL}/{r}/interleave_granularity", "4096")
    k.echo(f"{CXL}/{r}/interleave_ways", "2")
    check_refused(k, f"{CXL}/{r}/size", "0x10000000", errno.EINVAL, r)   # not 256M x ways
    check_refused(k, f"{CXL}/{r}/size", "0x100000000", errno.ERANGE, r)  # 4G > 2G window
    check_refused(k, f"{CXL}/{r}/size", "junk", errno.EINVAL, r)
    k.echo(f"{CXL}/{r}/size", "0x80000000\n\0")
    assert k.val(f"{CXL}/{r}/resource") == hex(int(k.val(f"{CXL}/decoder0.1/start"), 16))
    k.echo(f"{CXL}/{r}/size", "0x80000000")                             # same size: fine
    check_refused(k, f"{CXL}/{r}/size", "0x40000000", errno.EBUSY, r)    # another size
    check_refused(k, f"{CXL}/{r}/interleave_ways", "4", errno.EBUSY, r)  # frozen once sized
    check_refused(k, f"{CXL}/{r}/interleave_granularity", "4096", errno.EBUSY, r)
    k.echo(f"{CXL}/{r}/size", "0\n")
    assert k.val(f"{CXL}/{r}/resource") == "0xffffffffffffffff"
    k.echo(f"{CXL}/{r}/interleave_ways", "4")                           # free again


def test_hpa_allocated_ascending_and_window_full(k):
    # decoder0.0 (1G) holds the 512M auto region: the next region starts after it
    r = new_region(k, "decoder0.0")
    k.echo(f"{CXL}/{r}/interleave_granularity", "256")
    k.echo(f"{CXL}/{r}/interleave_ways", "1")
    check_refused(k, f"{CXL}/{r}/size", "0x40000000", errno.ERANGE, r)
    k.echo(f"{CXL}/{r}/size", "0x10000000")
    assert int(k.val(f"{CXL}/{r}/resource"), 16) == int(k.val(f"{CXL}/region0/resource"), 16) + (512 << 20)


def test_pmem_region_needs_uuid(k):
    r = new_region(k, "decoder0.3", "pmem")
    assert k.mode(f"{CXL}/{r}/uuid") == 0o644
    assert k.val(f"{CXL}/{r}/uuid") == "00000000-0000-0000-0000-000000000000"
    k.echo(f"{CXL}/{r}/interleave_granularity", "4096")
    k.echo(f"{CXL}/{r}/interleave_ways", "2")
    check_refused(k, f"{CXL}/{r}/size", "0x80000000", errno.ENXIO, r)
    u = "44618f4b-0a5c-4e0b-9a6f-fc9e23104070"
    check_refused(k, f"{CXL}/{r}/uuid", u, errno.EINVAL, r)          # 36 bytes, no terminator
    check_refused(k, f"{CXL}/{r}/uuid", "00000000-0000-0000-0000-000000000000\0", errno.EINVAL, r)
    check_refused(k, f"{CXL}/{r}/uuid", "not-a-uuid-at-all-not-a-uuid-at-allx\0", errno.EINVAL, r)
    k.echo(f"{CXL}/{r}/uuid", u + "\0")
    assert k.val(f"{CXL}/{r}/uuid") == u
    k.echo(f"{CXL}/{r}/size", "0x80000000")
    r2 = new_region(k, "decoder0.3", "pmem")
    check_refused(k, f"{CXL}/{r2}/uuid", u + "\n", errno.EBUSY, r2)   # used by another region


def test_ram_region_uuid_is_read_only(k):
    r = new_region(k)
    assert k.mode(f"{CXL}/{r}/uuid") == 0o444
    assert k.cat(f"{CXL}/{r}/uuid") == "\n"
    assert k.errno_of(f"{CXL}/{r}/uuid", "44618f4b-0a5c-4e0b-9a6f-fc9e23104070\0") == errno.EACCES


# ==== endpoint decoders ===========================================================================

def test_endpoint_decoder_mode_and_dpa(k):
    d1 = endpoint_decoder(k, "mem2", 0)
    d2 = endpoint_decoder(k, "mem2", 1)
    assert k.val(f"{CXL}/{d1}/mode") == "none"
    assert k.val(f"{CXL}/{d1}/dpa_resource") == "0xffffffffffffffff"
    assert k.val(f"{CXL}/{d1}/dpa_size") == "0x0000000000000000"
    check_refused(k, f"{CXL}/{d1}/mode", "mixed", errno.EINVAL, d1)
    check_refused(k, f"{CXL}/{d1}/dpa_size", "0x10000000", errno.EBUSY, d1)     # no mode
    k.echo(f"{CXL}/{d1}/mode", "ram\0")
    check_refused(k, f"{CXL}/{d1}/dpa_size", "0x1000", errno.EINVAL, d1)         # not 256M
    check_refused(k, f"{CXL}/{d1}/dpa_size", "0x80000000", errno.ENOSPC, d1)     # 2G > 1G ram
    k.echo(f"{CXL}/{d2}/mode", "ram")
    check_refused(k, f"{CXL}/{d2}/dpa_size", "0x10000000", errno.EBUSY, d2)     # out of order
    k.echo(f"{CXL}/{d1}/dpa_size", "0x10000000")
    assert k.val(f"{CXL}/{d1}/dpa_resource") == "0x0"
    k.echo(f"{CXL}/{d2}/dpa_size", "0x10000000")
    assert k.val(f"{CXL}/{d2}/dpa_resource") == "0x10000000"
    check_refused(k, f"{CXL}/{d1}/dpa_size", "0", errno.EBUSY, d1)              # not the last one
    k.echo(f"{CXL}/{d2}/dpa_size", "0")
    k.echo(f"{CXL}/{d1}/dpa_size", "0")
    # pmem after ram: allocations go up in DPA order
    k.echo(f"{CXL}/{d1}/mode", "pmem")
    k.echo(f"{CXL}/{d1}/dpa_size", "0x10000000")
    assert k.val(f"{CXL}/{d1}/dpa_resource") == "0x40000000"


def test_rcd_has_no_pmem_partition(k):
    d = endpoint_decoder(k, "mem10", 0)
    assert k.val(f"{CXL}/mem10/pmem/size") == "0x0"
    check_refused(k, f"{CXL}/{d}/mode", "pmem", errno.EINVAL, d)


def test_committed_endpoint_decoder_is_frozen(k):
    d = k.val(f"{CXL}/region0/target0")
    check_refused(k, f"{CXL}/{d}/mode", "pmem", errno.EBUSY, d)
    check_refused(k, f"{CXL}/{d}/dpa_size", "0", errno.EBUSY, d)


# ==== targets, commit, bind =======================================================================

def test_targets_checked_in_kernel_order(k):
    r = sized_region(k)
    devs = (r,)
    check_refused(k, f"{CXL}/{r}/target0", "decoder42.0", errno.ENODEV, *devs)
    check_refused(k, f"{CXL}/{r}/target0", "decoder0.0", errno.EINVAL, *devs)     # root decoder
    d_none = endpoint_decoder(k, "mem2", 0)
    check_refused(k, f"{CXL}/{r}/target0", d_none, errno.ENODEV, *devs)           # mode none
    d_pmem = alloc(k, "mem2", 0, 1 << 30, "pmem")
    check_refused(k, f"{CXL}/{r}/target0", d_pmem, errno.EINVAL, *devs)           # mode mismatch
    k.echo(f"{CXL}/{d_pmem}/dpa_size", "0")
    k.echo(f"{CXL}/{d_pmem}/mode", "ram")
    check_refused(k, f"{CXL}/{r}/target0", d_pmem, errno.ENXIO, *devs)            # no DPA
    k.echo(f"{CXL}/{d_pmem}/dpa_size", "0x10000000")
    check_refused(k, f"{CXL}/{r}/target0", d_pmem, errno.EINVAL, *devs)           # size x ways
    k.echo(f"{CXL}/{d_pmem}/dpa_size", "0")
    k.echo(f"{CXL}/{d_pmem}/dpa_size", "0x40000000")
    d_hb1 = alloc(k, "mem1", 0, 1 << 30)
    check_refused(k, f"{CXL}/{r}/target0", d_hb1, errno.ENXIO, *devs)             # HB1 at position 0
    k.echo(f"{CXL}/{r}/target0", d_pmem + "\0")
    check_refused(k, f"{CXL}/{r}/target1", d_pmem, errno.EBUSY, *devs)            # same memdev twice
    check_refused(k, f"{CXL}/{r}/commit", "1", errno.ENXIO, *devs)                # not all targets
    k.echo(f"{CXL}/{r}/target1", d_hb1)
    assert k.val(f"{CXL}/{d_hb1}/region") == r
    assert k.val(f"{CXL}/{d_hb1}/start") == k.val(f"{CXL}/{r}/resource")
    check_refused(k, f"{CXL}/{r}/interleave_ways", "4", errno.EBUSY, *devs)
    check_refused(k, f"{CXL}/{r}/size", "0", errno.EBUSY, *devs)                  # active


def test_commit_programs_the_hierarchy_and_bind(k):
    r = sized_region(k)
    d0 = alloc(k, "mem2", 0, 1 << 30)
    d1 = alloc(k, "mem1", 0, 1 << 30)
    check_refused(k, "/bus/cxl/drivers/cxl_region/bind", r, errno.ENXIO, r)     # not committed
    k.echo(f"{CXL}/{r}/target0", d0)
    k.echo(f"{CXL}/{r}/target1", d1)
    port1_before = k.val(f"{CXL}/port1/decoders_committed")
    check_refused(k, f"{CXL}/{r}/commit", "maybe", errno.EINVAL, r)
    k.echo(f"{CXL}/{r}/commit", "1\n\0")
    assert k.val(f"{CXL}/{r}/commit") == "1"
    assert int(k.val(f"{CXL}/port1/decoders_committed")) == int(port1_before) + 1
    # the host-bridge and switch decoders above mem2 are programmed with the region
    sw = k.port_by_uport("cxl_switch_uport.2")
    sw_dec = next(d for d in k.cxl_devices(f"decoder{sw.removeprefix('port')}.")
                  if k.val(f"{CXL}/{d}/region") == r)
    assert k.val(f"{CXL}/{sw_dec}/start") == k.val(f"{CXL}/{r}/resource")
    assert k.val(f"{CXL}/{sw_dec}/size") == "0x80000000"
    assert k.val(f"{CXL}/{sw_dec}/target_list") == "2"
    hb_dec = next(d for d in k.cxl_devices("decoder1.") if k.val(f"{CXL}/{d}/region") == r)
    assert k.val(f"{CXL}/{hb_dec}/interleave_granularity") == "8192"   # region ig x root ways
    assert k.val(f"{CXL}/{hb_dec}/target_list") == "2"
    k.echo("/bus/cxl/drivers/cxl_region/bind", r)
    assert k.exists(f"{CXL}/{r}/dax_region{r.removeprefix('region')}")
    check_refused(k, "/bus/cxl/drivers/cxl_region/bind", r, errno.EBUSY)
    check_refused(k, "/bus/cxl/drivers/cxl_port/bind", r, errno.ENODEV)         # match first
    k.echo(f"{CXL}/{r}/commit", "0")                                          # unbinds first
    assert not k.is_bound(r)
    assert k.val(f"{CXL}/port1/decoders_committed") == port1_before
    assert k.val(f"{CXL}/{d0}/region") == r                                   # still attached


def test_commit_in_decoder_order(k):
    """Only decoder N+1 of a port can commit after N: a second region through the same
    host bridge cannot reserve a decoder until the first one committed."""
    a = sized_region(k, "decoder0.1")
    d0 = alloc(k, "mem2", 0, 1 << 30)
    k.echo(f"{CXL}/{a}/target0", d0)
    b = new_region(k, "decoder0.3", "pmem")
    k.echo(f"{CXL}/{b}/interleave_granularity", "4096")
    k.echo(f"{CXL}/{b}/interleave_ways", "2")
    k.echo(f"{CXL}/{b}/uuid", "44618f4b-0a5c-4e0b-9a6f-fc9e23104070\0")
    k.echo(f"{CXL}/{b}/size", "0x80000000")
    e0 = alloc(k, "mem6", 0, 1 << 30, "pmem")
    check_refused(k, f"{CXL}/{b}/target0", e0, errno.EBUSY, b)     # HB0's next decoder is taken


def test_detach_and_teardown(k):
    r = sized_region(k)
    d0 = alloc(k, "mem2", 0, 1 << 30)
    d1 = alloc(k, "mem1", 0, 1 << 30)
    k.echo(f"{CXL}/{r}/target0", d0)
    k.echo(f"{CXL}/{r}/target1", d1)
    k.echo(f"{CXL}/{r}/commit", "1")
    k.echo("/bus/cxl/drivers/cxl_region/bind", r)
    k.echo(f"{CXL}/{r}/target1", "\0")                   # detach: decommit and unbind
    assert k.val(f"{CXL}/{r}/commit") == "0" and not k.is_bound(r)
    assert k.val(f"{CXL}/{d1}/region") == "" and k.val(f"{CXL}/{d1}/size") == "0x0"
    assert k.val(f"{CXL}/{r}/target1") == ""
    k.echo(f"{CXL}/{r}/target0", "\n")
    k.echo(f"{CXL}/{d0}/dpa_size", "0")
    k.echo(f"{CXL}/{d1}/dpa_size", "0")
    k.echo(f"{CXL}/decoder0.1/delete_region", r)
    assert k.val(f"{CXL}/{d0}/mode") == "ram"            # mode survives, DPA freed


def test_disabling_a_memdev_tears_down_its_region(k):
    assert k.val(f"{CXL}/region0/commit") == "1" and k.is_bound("region0")
    k.echo("/bus/cxl/drivers/cxl_mem/unbind", "mem4")
    assert not k.is_bound("region0")
    assert k.val(f"{CXL}/region0/commit") == "0"
    assert k.val(f"{CXL}/region0/target1") == ""
    assert not k.exists(f"{CXL}/region0/dax_region0")
    assert k.val(f"{CXL}/port1/decoders_committed") == "0"


def test_locked_window_refuses_decommit():
    from cxlfs.topology.build import build
    from cxlfs.topology.spec import load
    topo = load()
    topo.windows[0].locked = True
    kv = KernelView(build(topo))
    assert kv.val(f"{CXL}/region0/locked") == "1"
    check_refused(kv, f"{CXL}/region0/commit", "0", errno.EPERM, "region0")


# ==== XOR interleave (cxl_test interleave_arithmetic=1) =============================================

def test_xor_windows():
    from cxlfs.topology.build import build
    from cxlfs.topology.spec import load
    kv = KernelView(build(load("cxl_test_xor")))
    assert kv.val(f"{CXL}/decoder0.1/interleave_ways") == "2"
    assert kv.val(f"{CXL}/decoder0.1/interleave_granularity") == "256"
    assert kv.val(f"{CXL}/decoder0.2/interleave_ways") == "3"
    r = new_region(kv, "decoder0.1", "pmem")
    kv.echo(f"{CXL}/{r}/interleave_granularity", "256")
    kv.echo(f"{CXL}/{r}/interleave_ways", "2")
    kv.echo(f"{CXL}/{r}/uuid", "44618f4b-0a5c-4e0b-9a6f-fc9e23104070\0")
    kv.echo(f"{CXL}/{r}/size", "0x40000000")
    a = alloc(kv, "mem0", 0, 512 << 20, "pmem")    # below HB0
    b = alloc(kv, "mem1", 0, 512 << 20, "pmem")    # below HB1
    # XOR arithmetic on a 256M-aligned window: position 0 -> HB0, position 1 -> HB1
    check_refused(kv, f"{CXL}/{r}/target0", b, errno.ENXIO, r)
    kv.echo(f"{CXL}/{r}/target0", a)
    kv.echo(f"{CXL}/{r}/target1", b)
    kv.echo(f"{CXL}/{r}/commit", "1")
    assert kv.val(f"{CXL}/{r}/commit") == "1"


def test_detaching_the_last_target_below_a_port_clears_its_decoder(k):
    """Leaving ACTIVE resets every switch decoder programmed for the region, including the
    one of a port whose last target just left (cxl_region_teardown_targets)."""
    r = sized_region(k)
    d0 = alloc(k, "mem2", 0, 1 << 30)
    d1 = alloc(k, "mem1", 0, 1 << 30)
    k.echo(f"{CXL}/{r}/target0", d0)
    k.echo(f"{CXL}/{r}/target1", d1)
    hb1 = next(d for d in k.cxl_devices("decoder2.") if k.val(f"{CXL}/{d}/region") == r)
    assert k.val(f"{CXL}/{hb1}/size") == "0x80000000"
    k.echo(f"{CXL}/{r}/target1", "\n")
    assert k.val(f"{CXL}/{hb1}/region") == ""
    assert k.val(f"{CXL}/{hb1}/size") == "0x0" and k.val(f"{CXL}/{hb1}/start") == "0x0"
