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


# ---- differential test against a transcription of lib/kstrtox.c -------------------------------------

U64 = (1 << 64) - 1
HEX = "0123456789abcdefABCDEF"


def ref_kstrtoull_nosign(s: str, base: int):
    """_kstrtoull(): _parse_integer_fixup_radix + _parse_integer + one trailing newline."""
    if base == 0:
        if s[:1] == "0":
            base = 16 if s[1:2] in ("x", "X") and s[2:3] != "" and s[2] in HEX else 8
        else:
            base = 10
    if base == 16 and s[:1] == "0" and s[1:2] in ("x", "X"):
        s = s[2:]
    res, rv, overflow = 0, 0, False
    for c in s:
        if "0" <= c <= "9":
            val = ord(c) - ord("0")
        elif "a" <= c.lower() <= "f":
            val = ord(c.lower()) - ord("a") + 10
        else:
            break
        if val >= base:
            break
        if res > (U64 - val) // base:
            overflow = True
        res = (res * base + val) & U64
        rv += 1
    if overflow:
        return errno.ERANGE
    if rv == 0:
        return errno.EINVAL
    rest = s[rv:]
    if rest[:1] == "\n":
        rest = rest[1:]
    return errno.EINVAL if rest else ("ok", res)


def ref_kstrtoull(s: str):
    return ref_kstrtoull_nosign(s[1:] if s[:1] == "+" else s, 0)


def ref_kstrtoint(s: str):
    if s[:1] == "-":
        r = ref_kstrtoull_nosign(s[1:], 0)
        if not isinstance(r, tuple):
            return r
        if r[1] > 1 << 63:
            return errno.ERANGE
        value = -r[1]
    else:
        r = ref_kstrtoull(s)
        if not isinstance(r, tuple):
            return r
        if r[1] >= 1 << 63:
            return errno.ERANGE
        value = r[1]
    if not -(1 << 31) <= value < 1 << 31:
        return errno.ERANGE
    return ("ok", value)


def model(fn, s):
    try:
        return ("ok", fn(s, 0))
    except KernelError as e:
        return e.errno


NUMERIC = st.text(alphabet="0123456789abcdefxX+-\n g", max_size=24) | \
    st.integers(min_value=0, max_value=1 << 70).map(str) | \
    st.integers(min_value=0, max_value=1 << 70).map(hex)


@given(NUMERIC)
def test_kstrtoull_matches_kernel(s):
    got, want = model(kstrtoull, s), ref_kstrtoull(s)
    assert got == want, s


@given(NUMERIC)
def test_kstrtoint_matches_kernel(s):
    got, want = model(kstrtoint, s), ref_kstrtoint(s)
    assert got == want, s
