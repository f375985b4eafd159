"""Maps FUSE requests onto the Kernel model: inodes, errno, and exact page-cache invalidation.

Cache policy (measured in docs/design.md): OPEN answers ENOSYS, so the kernel never asks
again and keeps attribute pages in its page cache; entries and attributes live "forever".
That makes an unchanged attribute as cheap to read as on real sysfs, and makes this module
responsible for dropping every cached page whose text a write changed *before* that write
returns:

* every attribute page served is remembered with its text and the objects it depends on;
* after each store, the objects the model marked dirty are looked up, their cached
  attributes re-rendered, and the ones whose text changed are invalidated from a worker
  thread while the write waits (the kernel holds page locks of pending reads, so it must
  not be done from the request loop);
* the written file itself cannot be invalidated while its write is pending (the kernel
  holds its page lock); the kernel drops that page on the next size check, and a
  notification queued before the reply drops it for readers that skip the check.
"""
from __future__ import annotations

import errno
import os
import stat
import time
from typing import Callable

from ..core.errors import KernelError
from ..core.kernel import Kernel
from ..core.kernfs import KAttr, KDir, KLink, KNode
from . import protocol as P
from .session import FuseError, Session

ROOT_ID = 1
FOREVER = 365 * 24 * 3600.0
# READDIRPLUS always (not AUTO): listing a node's memoryN links then costs one request per
# ~25 entries instead of one LOOKUP each when daxctl walks them
WANT_FLAGS = (P.ASYNC_READ | P.BIG_WRITES | P.NO_OPEN_SUPPORT | P.NO_OPENDIR_SUPPORT
              | P.CACHE_SYMLINKS | P.MAX_PAGES | P.PARALLEL_DIROPS | P.DO_READDIRPLUS)
FOPEN_KEEP_CACHE = 1 << 1
OPEN_OUT = __import__("struct").Struct("=QIi")


class Served:
    __slots__ = ("node", "text", "deps")

    def __init__(self, node: KAttr, text: bytes, deps: tuple):
        self.node = node
        self.text = text
        self.deps = deps


class SysfsFS:
    """The FUSE Handler.  One instance per mount; ``session`` is set by the service."""

    def __init__(self, kernel: Kernel, *, uid: int = 0, gid: int = 0, strict_open: bool = False,
                 on_change: Callable[[], None] | None = None):
        self.kernel = kernel
        self.uid = uid
        self.gid = gid
        self.strict_open = strict_open
        self.on_change = on_change
        self.session: Session | None = None
        self.nodes: dict[int, KNode] = {ROOT_ID: kernel.root}
        self.nlookup: dict[int, int] = {}
        self.served: dict[int, Served] = {}
        self.watchers: dict[object, set[int]] = {}
        self.mtime = int(time.time())
        self.stats = {"reads": 0, "writes": 0, "invalidations": 0}
        self.rewritten: set[int] = set()      # written files whose size the next GETATTR varies
        self.owners: dict[int, tuple[int, int]] = {}     # chown'ed nodes
        self.modes: dict[int, int] = {}                  # chmod'ed directories

    # ==== attributes =============================================================================
    def attr_of(self, node: KNode) -> P.Attr:
        uid, gid = self.owners.get(node.id, (self.uid, self.gid))
        if isinstance(node, KAttr):
            # 4096 like sysfs; once after a write a different size, so the kernel's next size
            # check drops the page holding the written bytes (see do_write)
            size = 4095 if node.id in self.rewritten else 4096
            return P.Attr(node.id, stat.S_IFREG | node.mode, size, 1, uid, gid, 0, self.mtime)
        if isinstance(node, KLink):
            return P.Attr(node.id, stat.S_IFLNK | 0o777, len(node.text()), 1, uid, gid, 0, self.mtime)
        mode = self.modes.get(node.id, 0o755)
        return P.Attr(node.id, stat.S_IFDIR | mode, 0, 2, uid, gid, 0, self.mtime)

    def entry(self, node: KNode) -> bytes:
        self.nodes[node.id] = node
        self.nlookup[node.id] = self.nlookup.get(node.id, 0) + 1
        return self.entry_bytes(node)

    def entry_bytes(self, node: KNode) -> bytes:
        """A node's type, mode and size never change (bar chmod/chown): packed once."""
        entry = node.entry
        if entry is None:
            entry = self.pack_entry(node)
            if node.id not in self.owners and node.id not in self.rewritten:
                node.entry = entry
        return entry

    def pack_entry(self, node: KNode) -> bytes:
        if node.id in self.owners or node.id in self.modes or node.id in self.rewritten:
            return P.entry_out(self.attr_of(node), FOREVER, FOREVER)
        cls = node.__class__
        if cls is KAttr:
            mode, size, nlink = stat.S_IFREG | node.mode, 4096, 1
        elif cls is KDir:
            mode, size, nlink = stat.S_IFDIR | 0o755, 0, 2
        else:
            a = self.attr_of(node)
            return P.entry_out(a, FOREVER, FOREVER)
        return P.entry_out_fields(node.id, mode, size, nlink, self.uid, self.gid, 0, self.mtime,
                                  int(FOREVER))

    def node(self, nodeid: int) -> KNode:
        node = self.nodes.get(nodeid)
        if node is None:
            raise FuseError(errno.ESTALE)
        return node

    # ==== dispatch ===============================================================================
    def handle(self, req: P.Request):
        op = req.opcode
        fn = self.HANDLERS.get(op)
        if fn is None:
            raise FuseError(errno.ENOSYS)
        try:
            return fn(self, req)
        except KernelError as e:
            raise FuseError(e.errno) from None

    def do_init(self, req: P.Request) -> bytes:
        major, minor, readahead, flags = P.INIT_IN.unpack_from(req.body)
        if major != P.KERNEL_MAJOR:
            raise FuseError(errno.EPROTO)
        return P.INIT_OUT.pack(P.KERNEL_MAJOR, P.KERNEL_MINOR, readahead, flags & WANT_FLAGS,
                               64, 48, 64 * 1024, 1, 32, 0, 0, 0)

    def do_lookup(self, req: P.Request) -> bytes:
        parent = self.node(req.nodeid)
        if not isinstance(parent, KDir):
            raise FuseError(errno.ENOTDIR)
        name = req.name().decode("utf-8", "surrogateescape")
        child = parent.get(name) if parent.alive else None
        if child is None:
            raise FuseError(errno.ENOENT)   # an error reply: the kernel caches no negative entry
        return self.entry(child)

    def do_forget(self, req: P.Request) -> None:
        (n,) = P.FORGET_IN.unpack_from(req.body)
        self._forget(req.nodeid, n)
        return None

    def do_batch_forget(self, req: P.Request) -> None:
        count, _ = P.BATCH_FORGET_IN.unpack_from(req.body)
        off = P.BATCH_FORGET_IN.size
        for _ in range(count):
            nodeid, n = P.FORGET_ONE.unpack_from(req.body, off)
            off += P.FORGET_ONE.size
            self._forget(nodeid, n)
        return None

    def _forget(self, nodeid: int, n: int) -> None:
        left = self.nlookup.get(nodeid, 0) - n
        if left > 0:
            self.nlookup[nodeid] = left
            return
        self.nlookup.pop(nodeid, None)
        self.served.pop(nodeid, None)
        if nodeid != ROOT_ID:
            self.nodes.pop(nodeid, None)

    def do_getattr(self, req: P.Request) -> bytes:
        node = self.node(req.nodeid)
        out = P.attr_out(self.attr_of(node), FOREVER)
        self.rewritten.discard(node.id)
        return out

    def do_setattr(self, req: P.Request) -> bytes:
        """kernfs ignores truncation (shell "echo >" opens with O_TRUNC) and keeps chmod and
        chown (the kernel checked ownership already: default_permissions)."""
        valid, _, _, _, _, _, _, _, _, _, _, mode, _, uid, gid, _ = P.SETATTR_IN.unpack_from(req.body)
        node = self.node(req.nodeid)
        if valid & (P.FATTR_UID | P.FATTR_GID):
            old_uid, old_gid = self.owners.get(node.id, (self.uid, self.gid))
            self.owners[node.id] = (uid if valid & P.FATTR_UID else old_uid,
                                    gid if valid & P.FATTR_GID else old_gid)
        if valid & P.FATTR_MODE:
            if isinstance(node, KAttr):
                node.mode = mode & 0o7777
            elif isinstance(node, KDir):
                self.modes[node.id] = mode & 0o7777
        if valid & (P.FATTR_MODE | P.FATTR_UID | P.FATTR_GID):
            node.entry = None
        out = P.attr_out(self.attr_of(node), FOREVER)
        self.rewritten.discard(node.id)
        return out

    def do_create_entry(self, req: P.Request) -> bytes:
        raise FuseError(errno.EACCES)      # sysfs: files are the kernel's to create

    def do_change_entry(self, req: P.Request) -> bytes:
        raise FuseError(errno.EPERM)       # mknod, mkdir, unlink, rename, link, symlink

    def do_readlink(self, req: P.Request) -> bytes:
        node = self.node(req.nodeid)
        if not isinstance(node, KLink):
            raise FuseError(errno.EINVAL)
        return node.text().encode()

    def do_open(self, req: P.Request) -> bytes:
        if not self.strict_open:
            raise FuseError(errno.ENOSYS)   # the kernel stops sending OPEN and caches pages
        node = self.node(req.nodeid)
        flags = int.from_bytes(req.body[:4], "little")
        if isinstance(node, KAttr):
            # kernfs' extra open permission check: root too, any write bit suffices
            acc = flags & os.O_ACCMODE
            if acc in (os.O_RDONLY, os.O_RDWR) and (node.attr.show is None or not node.mode & 0o444):
                raise FuseError(errno.EACCES)
            if acc in (os.O_WRONLY, os.O_RDWR) and (node.attr.store_fn is None or not node.mode & 0o222):
                raise FuseError(errno.EACCES)
            if not node.alive:
                raise FuseError(errno.ENODEV)
        return OPEN_OUT.pack(0, FOPEN_KEEP_CACHE, 0)

    def do_read(self, req: P.Request) -> bytes:
        _, off, size, *_ = P.READ_IN.unpack_from(req.body)
        node = self.node(req.nodeid)
        if not isinstance(node, KAttr):
            raise FuseError(errno.EISDIR)
        data = self.kernel.read(node)
        self.stats["reads"] += 1
        self._remember(node, data)
        return data[off:off + size]

    def _remember(self, node: KAttr, text: bytes) -> None:
        owner = node.owner
        deps = (owner,)
        if node.attr.depends is not None:
            deps = deps + tuple(node.attr.depends(owner))
        self.served[node.id] = Served(node, text, deps)
        for dep in deps:
            self.watchers.setdefault(dep, set()).add(node.id)

    def do_write(self, req: P.Request):
        _, off, size, *_ = P.WRITE_IN.unpack_from(req.body)
        node = self.node(req.nodeid)
        if not isinstance(node, KAttr):
            raise FuseError(errno.EISDIR)
        data = bytes(req.body[P.WRITE_IN.size:P.WRITE_IN.size + size])
        self.stats["writes"] += 1
        # the written bytes sit in the page if it was cached, or if the write covered a page
        own_cached = node.id in self.served or size >= 4096
        try:
            written = self.kernel.write(node, data)
            error = 0
        except KernelError as e:
            written, error = 0, e.errno
        messages = self.collect_invalidations(exclude=node.id)
        # the written file's own page holds the written bytes now; its lock is ours until we
        # reply, so this one notification is queued without waiting for it
        self.served.pop(node.id, None)
        self.rewritten.add(node.id)
        if own_cached:
            self.session.notify_later([P.notify_inval_inode(node.id)])
        held = self.on_change(req.pid) if self.on_change is not None else None
        if not messages and held is None:
            if error:
                raise FuseError(error)
            return P.WRITE_OUT.pack(written, 0)
        return self._write_done(messages, written, error, held)

    async def _write_done(self, messages, written, error, held) -> bytes:
        await self.session.notify(messages)
        if held is not None:
            await held
        if error:
            raise FuseError(error)
        return P.WRITE_OUT.pack(written, 0)

    def do_readdir(self, req: P.Request, plus: bool = False) -> bytes:
        _, off, size, *_ = P.READ_IN.unpack_from(req.body)
        node = self.node(req.nodeid)
        if not isinstance(node, KDir):
            raise FuseError(errno.ENOTDIR)
        out: list[bytes] = []
        used = 0
        for name, target, offset in ((b".", node, 1), (b"..", node.parent or node, 2)):
            if off < offset:
                raw = self._dirent(target, name, offset, plus, dot=True)
                if used + len(raw) > size:
                    return b"".join(out)
                out.append(raw)
                used += len(raw)
        # 64Ki-entry directories: each child's record is packed once and kept on the node
        nodes, nlookup = self.nodes, self.nlookup
        for child in node.listing(max(off - 2, 0)):
            raw = child.dirent
            if raw is None:
                raw = child.dirent = self._dirent(child, child.name.encode("utf-8", "surrogateescape"),
                                                  child.seq + 2, False)
            if plus:
                raw = self.entry_bytes(child) + raw
            if used + len(raw) > size:
                break
            if plus:
                nodes[child.id] = child
                nlookup[child.id] = nlookup.get(child.id, 0) + 1
            out.append(raw)
            used += len(raw)
        return b"".join(out)

    def _dirent(self, node: KNode, name: bytes, offset: int, plus: bool, dot: bool = False) -> bytes:
        dtype = P.DT_DIR if isinstance(node, KDir) else P.DT_LNK if isinstance(node, KLink) else \
            P.DT_REG if isinstance(node, KAttr) else P.DT_CHR
        if not plus:
            return P.dirent(node.id, offset, name, dtype)
        # "." and ".." are not instantiated by the kernel: no lookup count for them
        entry = P.entry_out(self.attr_of(node), FOREVER, FOREVER)
        return P.direntplus(entry, node.id, offset, name, dtype)

    def do_readdirplus(self, req: P.Request) -> bytes:
        return self.do_readdir(req, plus=True)

    def do_statfs(self, req: P.Request) -> bytes:
        return P.KSTATFS.pack(0, 0, 0, 0, 0, 4096, 255, 4096)

    def do_enosys(self, req: P.Request) -> bytes:
        raise FuseError(errno.ENOSYS)

    def do_empty(self, req: P.Request) -> bytes:
        return b""

    def do_interrupt(self, req: P.Request) -> None:
        return None

    HANDLERS = {
        P.INIT: do_init, P.LOOKUP: do_lookup, P.FORGET: do_forget, P.BATCH_FORGET: do_batch_forget,
        P.GETATTR: do_getattr, P.SETATTR: do_setattr, P.READLINK: do_readlink, P.OPEN: do_open,
        P.READ: do_read, P.WRITE: do_write, P.READDIR: do_readdir, P.READDIRPLUS: do_readdirplus,
        P.STATFS: do_statfs, P.OPENDIR: do_enosys, P.FLUSH: do_enosys, P.GETXATTR: do_enosys,
        P.LISTXATTR: do_enosys, P.ACCESS: do_enosys, P.RELEASE: do_empty, P.RELEASEDIR: do_empty,
        P.CREATE: do_create_entry, P.TMPFILE: do_create_entry, P.MKNOD: do_change_entry,
        P.MKDIR: do_change_entry, P.UNLINK: do_change_entry, P.RMDIR: do_change_entry,
        P.RENAME: do_change_entry, P.RENAME2: do_change_entry, P.LINK: do_change_entry,
        P.SYMLINK: do_change_entry,
        P.FSYNC: do_empty, P.DESTROY: do_empty, P.INTERRUPT: do_interrupt,
    }

    # ==== invalidation ============================================================================
    def collect_invalidations(self, exclude: int = 0) -> list[bytes]:
        """Drain the model's change journal into the notifications the kernel needs."""
        dirty, removed, dirs = self.kernel.tree.changes.drain()
        messages: list[bytes] = []
        stale: set[int] = set()
        for obj in dirty:
            ids = self.watchers.pop(obj, None)
            if not ids:
                continue
            for nid in ids:
                if nid in stale:
                    continue
                served = self.served.get(nid)
                if served is None or obj not in served.deps:
                    continue
                if served.node.alive:
                    try:
                        text = self.kernel.read(served.node)
                    except KernelError:
                        text = None
                    if text == served.text:
                        for dep in served.deps:
                            self.watchers.setdefault(dep, set()).add(nid)
                        continue
                stale.add(nid)
        for parent, name, node in removed:
            if node.id in self.nodes:
                messages.append(P.notify_delete(parent.id, node.id, name.encode("utf-8", "surrogateescape")))
            for nid in _served_below(node, self.served):
                stale.add(nid)
        for nid in stale:
            self.served.pop(nid, None)
            if nid != exclude:
                messages.append(P.notify_inval_inode(nid))
        for d in dirs:
            if d.id in self.nodes and d.alive:
                messages.append(P.notify_inval_inode(d.id))
        self.stats["invalidations"] += len(messages)
        return messages


def _served_below(node: KNode, served: dict[int, Served]):
    if isinstance(node, KAttr):
        if node.id in served:
            yield node.id
    elif isinstance(node, KDir) and node.populated:
        for child in node.children.values():
            yield from _served_below(child, served)
