"""The kernel string parsers and printf formats (kernel-abi.md §0.1; lib/kstrtox.c, lib/string.c,
lib/vsprintf.c)."""
from __future__ import annotations

import errno

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cxlfs.core.errors import KernelError
from cxlfs.core.parse import (WriteBuf, bitmap_list, hex_prefixed, kstrtobool, kstrtoint,
                              kstrtoll, kstrtouint, kstrtoull, phys_addr, sscanf_prefix_int,
                              sysfs_streq)


def err(fn, *args) -> int | None:
    try:
        fn(*args)
    except KernelError as e:
        return e.errno
    return None


# ---- kstrtoull ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text,value", [
    ("0", 0), ("10", 10), ("10\n", 10), ("+5", 5), ("+5\n", 5),
    ("0x10", 16), ("0X1f", 31), ("0xABCdef", 0xABCDEF), ("010", 8), ("0777\n", 0o777),
    ("18446744073709551615", (1 << 64) - 1), ("0xffffffffffffffff\n", (1 << 64) - 1),
    ("00", 0), ("0x0", 0),
])
def test_kstrtoull_accepts(text, value):
    assert kstrtoull(text, 0) == value


@pytest.mark.parametrize("text", [
    "", "\n", "-1", "1 ", " 1", "1\n\n", "1\n2", "abc", "0x", "0x\n", "0xg", "08", "09\n",
    "1.5", "++1", "+", "+\n", "1x", "0b101",
])
def test_kstrtoull_rejects_with_einval(text):
    assert err(kstrtoull, text, 0) == errno.EINVAL


@pytest.mark.parametrize("text", ["18446744073709551616", "0x10000000000000000\n",
                                  "99999999999999999999999"])
def test_kstrtoull_overflow_is_erange(text):
    assert err(kstrtoull, text, 0) == errno.ERANGE


@pytest.mark.xfail(reason="BUG: kstrtoull checks trailing junk before overflow; the kernel's "
                          "_kstrtoull reports KSTRTOX_OVERFLOW (ERANGE) first", strict=True)
def test_kstrtoull_overflow_with_junk_is_erange():
    # lib/kstrtox.c: rv = _parse_integer(); if (rv & KSTRTOX_OVERFLOW) return -ERANGE; ... junk -> EINVAL
    assert err(kstrtoull, "99999999999999999999x", 0) == errno.ERANGE


def test_kstrtoull_explicit_base():
    assert kstrtoull("10", 16) == 16
    assert kstrtoull("0x10", 16) == 16
    assert kstrtoull("10", 10) == 10
    assert err(kstrtoull, "0x10", 10) == errno.EINVAL
    assert kstrtoull("010", 10) == 10          # no octal auto-detect with an explicit base


@given(st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_kstrtoull_roundtrips_every_format(n):
    for text in (str(n), f"{n:#x}", f"{n:#x}\n", f"+{n}", "0" + format(n, "o")):
        assert kstrtoull(text, 0) == n


# ---- kstrtouint / kstrtoint / kstrtoll -----------------------------------------------------------

def test_kstrtouint_range():
    assert kstrtouint("4294967295", 0) == (1 << 32) - 1
    assert err(kstrtouint, "4294967296", 0) == errno.ERANGE
    assert err(kstrtouint, "-1", 0) == errno.EINVAL


@pytest.mark.parametrize("text,value", [
    ("0", 0), ("-0", 0), ("-1", -1), ("-1\n", -1), ("+7", 7), ("2147483647", 2**31 - 1),
    ("-2147483648", -2**31), ("0x7fffffff", 2**31 - 1), ("-0x10", -16), ("-010", -8),
    ("4096\n", 4096),
])
def test_kstrtoint_accepts(text, value):
    assert kstrtoint(text, 0) == value


@pytest.mark.parametrize("text,code", [
    ("2147483648", errno.ERANGE), ("-2147483649", errno.ERANGE), ("0x80000000", errno.ERANGE),
    ("", errno.EINVAL), ("\n", errno.EINVAL), ("-", errno.EINVAL), ("--1", errno.EINVAL),
    ("1-", errno.EINVAL), ("4k", errno.EINVAL), (" 1", errno.EINVAL),
])
def test_kstrtoint_rejects(text, code):
    assert err(kstrtoint, text, 0) == code


def test_kstrtoll_range():
    assert kstrtoll("9223372036854775807", 0) == 2**63 - 1
    assert kstrtoll("-9223372036854775808", 0) == -2**63
    assert err(kstrtoll, "9223372036854775808", 0) == errno.ERANGE
    assert err(kstrtoll, "-9223372036854775809", 0) == errno.ERANGE


@pytest.mark.xfail(reason="BUG: kstrtoll/kstrtoint accept '-+1' as -1; the kernel's kstrtoll "
                          "passes s+1 to _kstrtoull, which does not skip a '+' (EINVAL)",
                   strict=True)
def test_kstrtoint_minus_plus_is_einval():
    assert err(kstrtoint, "-+1", 0) == errno.EINVAL


# ---- kstrtobool ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["1", "y", "Y", "t", "T", "yes", "yak", "1xyz", "true", "on",
                                  "ON", "oN\n", "y\n", "10", "Yes please"])
def test_kstrtobool_true(text):
    assert kstrtobool(text) is True


@pytest.mark.parametrize("text", ["0", "n", "N", "f", "F", "no", "nope", "0x1", "false", "off",
                                  "OFF", "of", "0\n", "n\n"])
def test_kstrtobool_false(text):
    assert kstrtobool(text) is False


@pytest.mark.parametrize("text", ["", "\n", "2", "o", "o\n", "ox", "x", " 1", "-1", "\t"])
def test_kstrtobool_rejects(text):
    assert err(kstrtobool, text) == errno.EINVAL


# ---- sysfs_streq ---------------------------------------------------------------------------------

@pytest.mark.parametrize("a,b", [("mem0", "mem0"), ("mem0\n", "mem0"), ("mem0", "mem0\n"),
                                 ("", "\n"), ("\n", ""), ("", ""), ("mem0\n", "mem0\n")])
def test_sysfs_streq_equal(a, b):
    assert sysfs_streq(a, b)


@pytest.mark.parametrize("a,b", [("mem0\n\n", "mem0"), ("mem0 ", "mem0"), ("mem", "mem0"),
                                 ("mem00", "mem0"), ("\n\n", ""), ("Mem0", "mem0"),
                                 ("mem0\r\n", "mem0")])
def test_sysfs_streq_different(a, b):
    assert not sysfs_streq(a, b)


# ---- WriteBuf: what a store() sees ---------------------------------------------------------------

def test_writebuf_cuts_at_nul_and_keeps_count():
    buf = WriteBuf(b"region1\0")
    assert buf == "region1" and buf.count == 8
    buf = WriteBuf(b"1\n\0junk")
    assert buf == "1\n" and buf.count == 7
    assert WriteBuf(b"\0") == "" and WriteBuf(b"\0").count == 1


# ---- sscanf("region%d") ---------------------------------------------------------------------------

def test_sscanf_prefix_ignores_trailing_text():
    assert sscanf_prefix_int("region6", "region") == 6
    assert sscanf_prefix_int("region6\n", "region") == 6
    assert sscanf_prefix_int("region12abc", "region") == 12
    assert err(sscanf_prefix_int, "regionx", "region") == errno.EINVAL
    assert err(sscanf_prefix_int, "6", "region") == errno.EINVAL
    assert err(sscanf_prefix_int, "", "region") == errno.EINVAL


# ---- kernel printf formats -------------------------------------------------------------------------

def test_hex_prefixed_prints_0x_for_zero():
    assert hex_prefixed(0) == "0x0"          # %#llx in the kernel; glibc would print "0"
    assert hex_prefixed(0x40000000) == "0x40000000"
    assert hex_prefixed((1 << 64) - 1) == "0xffffffffffffffff"


def test_phys_addr_is_zero_padded():
    assert phys_addr(0) == "0x0000000000000000"
    assert phys_addr(0x10000000) == "0x0000000010000000"


def test_bitmap_list_ranges():
    assert bitmap_list([]) == ""
    assert bitmap_list([0]) == "0"
    assert bitmap_list([0, 1, 3]) == "0-1,3"
    assert bitmap_list([5, 1, 2, 3, 7, 8]) == "1-3,5,7-8"
