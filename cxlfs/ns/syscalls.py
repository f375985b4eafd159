"""The few Linux syscalls the namespace runner needs that Python 3.11's os module lacks."""
from __future__ import annotations

import ctypes
import ctypes.util
import os

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

PR_CAPBSET_DROP = 24
PR_SET_PDEATHSIG = 1
CAP_DAC_OVERRIDE = 1
CAP_DAC_READ_SEARCH = 2

FUSE_SUPER_MAGIC = 0x65735546


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def mount(source: str, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    _check(_libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                       ctypes.c_ulong(flags), data.encode() if data else None), f"mount {target}")


def umount(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(target.encode(), ctypes.c_int(flags)), f"umount {target}")


def prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), 0, 0, 0), "prctl")


class _Statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("f_bsize", ctypes.c_long), ("rest", ctypes.c_byte * 112)]


def fs_type(path: str) -> int:
    buf = _Statfs()
    _check(_libc.statfs(path.encode(), ctypes.byref(buf)), f"statfs {path}")
    return buf.f_type & 0xFFFFFFFF


def drop_dac_override() -> None:
    """Make root obey mode bits as sysfs makes it (kernfs' open-time check), for exec'd programs."""
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        try:
            prctl(PR_CAPBSET_DROP, cap)
        except OSError:
            pass
