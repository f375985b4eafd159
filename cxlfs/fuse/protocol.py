"""The FUSE kernel wire protocol (include/uapi/linux/fuse.h), the subset cxlfs speaks.

cxlfs talks to /dev/fuse directly instead of going through libfuse/pyfuse3: with
`open()` answering ENOSYS (which the read-latency target needs, see docs/design.md)
the kernel sends READ and WRITE with fh=0, and pyfuse3 hands its handlers only the fh,
never the inode.  Here every request carries its nodeid.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

KERNEL_MAJOR = 7
KERNEL_MINOR = 31

# opcodes
SYMLINK = 6
MKNOD = 8
MKDIR = 9
UNLINK = 10
RMDIR = 11
RENAME = 12
LINK = 13
CREATE = 35
RENAME2 = 45
TMPFILE = 51
LOOKUP = 1
FORGET = 2
GETATTR = 3
SETATTR = 4
READLINK = 5
OPEN = 14
READ = 15
WRITE = 16
STATFS = 17
RELEASE = 18
FSYNC = 20
GETXATTR = 22
LISTXATTR = 23
FLUSH = 25
INIT = 26
OPENDIR = 27
READDIR = 28
RELEASEDIR = 29
ACCESS = 34
INTERRUPT = 36
DESTROY = 38
BATCH_FORGET = 42
READDIRPLUS = 44

# INIT flags
ASYNC_READ = 1 << 0
ATOMIC_O_TRUNC = 1 << 3
BIG_WRITES = 1 << 5
DO_READDIRPLUS = 1 << 13
READDIRPLUS_AUTO = 1 << 14
NO_OPEN_SUPPORT = 1 << 17
PARALLEL_DIROPS = 1 << 18
MAX_PAGES = 1 << 22
CACHE_SYMLINKS = 1 << 23
NO_OPENDIR_SUPPORT = 1 << 24
EXPLICIT_INVAL_DATA = 1 << 25
INIT_EXT = 1 << 30

# notification codes (sent as the error field of an unsolicited reply)
NOTIFY_INVAL_INODE = 2
NOTIFY_INVAL_ENTRY = 3
NOTIFY_DELETE = 6

# setattr valid bits
FATTR_MODE = 1 << 0
FATTR_UID = 1 << 1
FATTR_GID = 1 << 2
FATTR_SIZE = 1 << 3

IN_HEADER = struct.Struct("=IIQQIIIHH")        # len opcode unique nodeid uid gid pid extlen pad
OUT_HEADER = struct.Struct("=IiQ")             # len error unique
INIT_IN = struct.Struct("=IIII")               # major minor max_readahead flags (flags2 follows)
INIT_OUT = struct.Struct("=IIIIHHIIHHII24x")   # ... max_write time_gran max_pages map_align flags2 stack
ATTR = struct.Struct("=QQQQQQIIIIIIIIII")      # ino size blocks a/m/ctime nsecs mode nlink uid gid rdev blksize flags
ENTRY_OUT_HEAD = struct.Struct("=QQQQII")      # nodeid generation entry_valid attr_valid nsecs
ATTR_OUT_HEAD = struct.Struct("=QII")          # attr_valid attr_valid_nsec dummy
READ_IN = struct.Struct("=QQIIQII")            # fh offset size read_flags lock_owner flags pad
WRITE_IN = struct.Struct("=QQIIQII")           # fh offset size write_flags lock_owner flags pad
WRITE_OUT = struct.Struct("=II")
SETATTR_IN = struct.Struct("=IIQQQQQQIIIIIIII")  # valid pad fh size lock_owner a/m/ctime nsecs mode unused uid gid unused
FORGET_IN = struct.Struct("=Q")
BATCH_FORGET_IN = struct.Struct("=II")
FORGET_ONE = struct.Struct("=QQ")
DIRENT = struct.Struct("=QQII")                 # ino off namelen type
KSTATFS = struct.Struct("=QQQQQIII4x24x")       # blocks bfree bavail files ffree bsize namelen frsize
INVAL_INODE_OUT = struct.Struct("=Qqq")
INVAL_ENTRY_OUT = struct.Struct("=QII")
DELETE_OUT = struct.Struct("=QQII")

DT_DIR = 4
DT_REG = 8
DT_LNK = 10
DT_CHR = 2


@dataclass(slots=True)
class Attr:
    """What getattr/lookup report for one inode."""
    ino: int
    mode: int
    size: int = 0
    nlink: int = 1
    uid: int = 0
    gid: int = 0
    rdev: int = 0
    mtime: int = 0

    def pack(self) -> bytes:
        return ATTR.pack(self.ino, self.size, 0, self.mtime, self.mtime, self.mtime,
                         0, 0, 0, self.mode, self.nlink, self.uid, self.gid, self.rdev, 4096, 0)


def split_timeout(seconds: float) -> tuple[int, int]:
    whole = int(seconds)
    return whole, int((seconds - whole) * 1e9)


ENTRY_AND_ATTR = struct.Struct("=QQQQII" "QQQQQQIIIIIIIIII")


def entry_out_fields(ino: int, mode: int, size: int, nlink: int, uid: int, gid: int, rdev: int,
                     mtime: int, timeout: int) -> bytes:
    """entry_out for whole-second timeouts, packed in one go (the readdirplus hot path)."""
    return ENTRY_AND_ATTR.pack(ino, 0, timeout, timeout, 0, 0, ino, size, 0, mtime, mtime, mtime,
                               0, 0, 0, mode, nlink, uid, gid, rdev, 4096, 0)


def entry_out(attr: Attr, entry_timeout: float, attr_timeout: float) -> bytes:
    es, ens = split_timeout(entry_timeout)
    as_, ans = split_timeout(attr_timeout)
    return ENTRY_OUT_HEAD.pack(attr.ino, 0, es, as_, ens, ans) + attr.pack()


def attr_out(attr: Attr, attr_timeout: float) -> bytes:
    as_, ans = split_timeout(attr_timeout)
    return ATTR_OUT_HEAD.pack(as_, ans, 0) + attr.pack()


def dirent(ino: int, offset: int, name: bytes, dtype: int) -> bytes:
    raw = DIRENT.pack(ino, offset, len(name), dtype) + name
    return raw + b"\0" * (-len(raw) % 8)


def direntplus(entry: bytes, ino: int, offset: int, name: bytes, dtype: int) -> bytes:
    return entry + dirent(ino, offset, name, dtype)


def reply(unique: int, data: bytes = b"", error: int = 0) -> bytes:
    return OUT_HEADER.pack(OUT_HEADER.size + len(data), -error if error else 0, unique) + data


def notify(code: int, data: bytes) -> bytes:
    return OUT_HEADER.pack(OUT_HEADER.size + len(data), code, 0) + data


def notify_inval_inode(ino: int) -> bytes:
    # offset 0, length 0: drop every cached page and the attributes
    return notify(NOTIFY_INVAL_INODE, INVAL_INODE_OUT.pack(ino, 0, 0))


def notify_inval_entry(parent: int, name: bytes) -> bytes:
    return notify(NOTIFY_INVAL_ENTRY, INVAL_ENTRY_OUT.pack(parent, len(name), 0) + name + b"\0")


def notify_delete(parent: int, child: int, name: bytes) -> bytes:
    return notify(NOTIFY_DELETE, DELETE_OUT.pack(parent, child, len(name), 0) + name + b"\0")


@dataclass(slots=True)
class Request:
    opcode: int
    unique: int
    nodeid: int
    uid: int
    gid: int
    pid: int
    body: memoryview

    @classmethod
    def parse(cls, buf: bytes) -> "Request":
        length, opcode, unique, nodeid, uid, gid, pid, extlen, _ = IN_HEADER.unpack_from(buf)
        body = memoryview(buf)[IN_HEADER.size:length - extlen * 8]
        return cls(opcode, unique, nodeid, uid, gid, pid, body)

    def name(self) -> bytes:
        """The NUL-terminated name argument of LOOKUP."""
        raw = bytes(self.body)
        return raw[:raw.index(b"\0")]
