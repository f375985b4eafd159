"""Endpoint decoder DPA stores (kernel-abi.md §2.4 mode / dpa_size), in process."""
from __future__ import annotations

import errno

import pytest

DEV = "/bus/cxl/devices"
MiB = 1 << 20


@pytest.fixture
def ep(k):
    """decoderN of mem2's endpoint (idle), as a format string taking the index."""
    port = k.port_by_uport("mem2")
    return f"{DEV}/decoder{port[8:]}.{{}}"


def test_mode_values(k, ep):
    d = ep.format(0)
    for bad in ("none", "mixed", "RAM", "ram ", "", "\n", "ramx"):
        assert k.errno_of(f"{d}/mode", bad or b"\0") == errno.EINVAL, repr(bad)
    assert k.echo(f"{d}/mode", b"pmem\0") == 5
    assert k.val(f"{d}/mode") == "pmem"
    assert k.echo(f"{d}/mode", "ram\n") == 4
    assert k.val(f"{d}/mode") == "ram"


def test_mode_pmem_on_ram_only_device_is_einval(k):
    port = k.port_by_uport("mem10")
    d = f"{DEV}/decoder{port[8:]}.0"
    assert k.errno_of(f"{d}/mode", "pmem") == errno.EINVAL
    assert k.val(f"{d}/mode") == "none"
    assert k.echo(f"{d}/mode", "ram") == 3


def test_dpa_size_rules(k, ep):
    d0, d1 = ep.format(0), ep.format(1)
    assert k.errno_of(f"{d0}/dpa_size", "0x10000000") == errno.EBUSY        # no mode yet
    k.echo(f"{d0}/mode", "ram")
    assert k.errno_of(f"{d0}/dpa_size", "0x1000") == errno.EINVAL           # not 256M aligned
    assert k.errno_of(f"{d0}/dpa_size", "junk") == errno.EINVAL
    assert k.errno_of(f"{d0}/dpa_size", "0x80000000") == errno.ENOSPC       # > 1G ram partition
    k.echo(f"{d1}/mode", "ram")
    assert k.errno_of(f"{d1}/dpa_size", "0x10000000") == errno.EBUSY        # out of order
    assert k.echo(f"{d0}/dpa_size", b"0x10000000\n\0") == 12
    assert k.val(f"{d0}/dpa_size") == "0x0000000010000000"
    assert k.val(f"{d0}/dpa_resource") == "0x0"
    k.echo(f"{d1}/dpa_size", "0x10000000")
    assert k.val(f"{d1}/dpa_resource") == "0x10000000"
    assert k.errno_of(f"{d0}/dpa_size", "0") == errno.EBUSY                 # not the highest
    k.echo(f"{d1}/dpa_size", "0\n")
    assert k.val(f"{d1}/dpa_resource") == "0xffffffffffffffff"
    assert k.val(f"{d1}/dpa_size") == "0x0000000000000000"
    k.echo(f"{d0}/dpa_size", "0")
    assert k.val(f"{d0}/dpa_resource") == "0xffffffffffffffff"


def test_pmem_allocation_skips_the_ram_partition(k, ep):
    d0, d1 = ep.format(0), ep.format(1)
    k.echo(f"{d0}/mode", "pmem")
    k.echo(f"{d0}/dpa_size", str(512 * MiB))
    assert k.val(f"{d0}/dpa_resource") == hex(1 << 30)                     # pmem starts at 1G
    k.echo(f"{d1}/mode", "ram")
    assert k.errno_of(f"{d1}/dpa_size", "0x10000000") == errno.ENOSPC       # ram is behind us


def test_decoders_of_region0_are_busy(k):
    port = k.port_by_uport("mem0")
    d0, d1 = f"{DEV}/decoder{port[8:]}.0", f"{DEV}/decoder{port[8:]}.1"
    assert k.errno_of(f"{d0}/mode", "pmem") == errno.EBUSY                  # committed
    assert k.errno_of(f"{d0}/dpa_size", "0") == errno.EBUSY                 # in a region
    assert k.val(f"{d0}/mode") == "ram"
    # the next decoder allocates after the firmware's 256M
    k.echo(f"{d1}/mode", "ram")
    k.echo(f"{d1}/dpa_size", "0x10000000")
    assert k.val(f"{d1}/dpa_resource") == "0x10000000"
