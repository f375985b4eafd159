"""The kernel's string parsers and formatters, with their quirks (lib/kstrtox.c, lib/vsprintf.c).

Stores receive the written bytes as the kernel's store() does: a C string, so text after
a NUL is invisible (libcxl writes ``"region1\\0"``).  ``WriteBuf`` keeps the byte count too,
for the few stores that check it (region ``uuid``).
"""
from __future__ import annotations

import errno
import re
import uuid as _uuid

from .errors import KernelError

PAGE_SIZE = 4096


class WriteBuf(str):
    """What a store() sees: the text up to the first NUL; ``count`` is the write length."""

    count: int

    def __new__(cls, data: bytes) -> "WriteBuf":
        cut = data.find(b"\0")
        text = (data if cut < 0 else data[:cut]).decode("latin-1")
        self = super().__new__(cls, text)
        self.count = len(data)
        return self


def sysfs_streq(buf: str, want: str) -> bool:
    """Equal, or equal but for one trailing newline on one side (lib/string.c)."""
    return buf == want or buf == want + "\n" or want == buf + "\n"


def strip_newline(buf: str) -> str:
    return buf[:-1] if buf.endswith("\n") else buf


_DIGITS = "0123456789abcdef"


def _parse_unsigned(buf: str, base: int, allow_plus: bool = True) -> int:
    """_parse_integer_fixup_radix + _parse_integer + the trailing-newline rule; overflow is
    reported before trailing junk, as _parse_integer flags it while reading digits."""
    s = buf[1:] if allow_plus and buf.startswith("+") else buf
    if base == 0:
        if s.startswith("0"):
            if s[1:2] in ("x", "X") and s[2:3] and s[2].lower() in _DIGITS:
                base, s = 16, s[2:]
            else:
                base = 8
        else:
            base = 10
    elif base == 16 and s[:2].lower() == "0x":
        s = s[2:]
    valid = _DIGITS[:base]
    n = 0
    while n < len(s) and s[n].lower() in valid:
        n += 1
    if n == 0:
        raise KernelError(errno.EINVAL)
    value = int(s[:n], base)
    if value >= 1 << 64:
        raise KernelError(errno.ERANGE)
    if s[n:] not in ("", "\n"):
        raise KernelError(errno.EINVAL)
    return value


def kstrtoull(buf: str, base: int = 0) -> int:
    return _parse_unsigned(buf, base)


def kstrtouint(buf: str, base: int = 0) -> int:
    value = _parse_unsigned(buf, base)
    if value >= 1 << 32:
        raise KernelError(errno.ERANGE)
    return value


def kstrtoll(buf: str, base: int = 0) -> int:
    if buf.startswith("-"):
        value = _parse_unsigned(buf[1:], base, allow_plus=False)
        if value > 1 << 63:
            raise KernelError(errno.ERANGE)
        return -value
    value = _parse_unsigned(buf, base)
    if value >= 1 << 63:
        raise KernelError(errno.ERANGE)
    return value


def kstrtoint(buf: str, base: int = 0) -> int:
    value = kstrtoll(buf, base)
    if not -(1 << 31) <= value < 1 << 31:
        raise KernelError(errno.ERANGE)
    return value


def kstrtobool(buf: str) -> bool:
    """Only the first character (two for on/off) matters: 'yak' is true, '0x' false."""
    if not buf:
        raise KernelError(errno.EINVAL)
    c = buf[0]
    if c in "yYtT1":
        return True
    if c in "nNfF0":
        return False
    if c in "oO" and len(buf) > 1:
        if buf[1] in "nN":
            return True
        if buf[1] in "fF":
            return False
    raise KernelError(errno.EINVAL)


def sscanf_prefix_int(buf: str, prefix: str) -> int:
    """sscanf(buf, "<prefix>%d"): prefix must match, digits follow, trailing text ignored."""
    if not buf.startswith(prefix):
        raise KernelError(errno.EINVAL)
    m = re.match(r"\s*([+-]?\d+)", buf[len(prefix):])
    if not m:
        raise KernelError(errno.EINVAL)
    return int(m.group(1))


_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def parse_uuid(buf: str) -> _uuid.UUID:
    """uuid_parse(): exactly the 36-character hyphenated form (what follows is not looked at)."""
    if not _UUID_RE.match(buf):
        raise KernelError(errno.EINVAL)
    return _uuid.UUID(buf[:36])


# --- kernel printf formats -------------------------------------------------------------

def hex_prefixed(value: int) -> str:
    """%#llx: always 0x, also for zero."""
    return f"{value:#x}"


def phys_addr(value: int) -> str:
    """%pa: 0x and 16 zero-padded digits."""
    return f"0x{value:016x}"


def bitmap_list(bits) -> str:
    """%*pbl: 0-1,3 ranges; an empty set prints nothing."""
    ids = sorted(set(bits))
    out, i = [], 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        out.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(out)


def emit(text: str) -> str:
    """sysfs_emit: the show buffer is one page."""
    return text[:PAGE_SIZE - 1] if len(text) >= PAGE_SIZE else text
