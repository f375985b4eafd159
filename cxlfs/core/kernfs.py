"""A kernfs-like tree: directories, attribute files and symlinks with stable ids.

Ids play the role of inode numbers: assigned once, never reused (a directory that
vanishes and comes back is a new node).  Device directories may be *lazy*: their
children are built on first access by ``populate``, so 64Ki memory blocks cost three
nodes each until someone looks inside.

Every structural change (a child added or removed) and every object whose shown state
changed is recorded in ``Changes``; the FUSE adapter drains it after each request to
invalidate exactly what the kernel may have cached.
"""
from __future__ import annotations

import bisect
import itertools
from typing import TYPE_CHECKING, Callable, Iterator

if TYPE_CHECKING:
    from .attrs import Attribute


class Changes:
    """What changed since the last drain: objects whose attributes may show new text,
    and directories whose entries changed."""

    __slots__ = ("dirty", "removed", "dirs")

    def __init__(self) -> None:
        self.dirty: set = set()
        self.removed: list[tuple[KDir, str, KNode]] = []   # (parent, name, node)
        self.dirs: set[KDir] = set()                       # directories whose listing changed

    def drain(self) -> tuple[set, list, set]:
        out = (self.dirty, self.removed, self.dirs)
        self.dirty, self.removed, self.dirs = set(), [], set()
        return out


class KNode:
    __slots__ = ("id", "name", "parent", "alive", "seq", "entry", "dirent", "__weakref__")

    def __init__(self, tree: "Tree", name: str):
        self.id = next(tree.ids)
        self.name = name
        self.parent: KDir | None = None
        self.alive = True
        self.seq = 0
        self.entry: bytes | None = None     # the FUSE adapter's packed entry (immutable per node)
        self.dirent: bytes | None = None    # ... and its readdir record

    def path(self) -> str:
        parts = []
        node: KNode | None = self
        while node is not None and node.parent is not None:
            parts.append(node.name)
            node = node.parent
        return "/" + "/".join(reversed(parts))

    def depth(self) -> int:
        d, node = 0, self.parent
        while node is not None:
            d += 1
            node = node.parent
        return d


class KDir(KNode):
    __slots__ = ("tree", "_children", "_order", "_seqs", "_next_seq", "populate", "owner", "hidden")

    def __init__(self, tree: "Tree", name: str, owner=None,
                 populate: Callable[["KDir"], None] | None = None):
        super().__init__(tree, name)
        self.tree = tree
        self._children: dict[str, KNode] | None = None if populate else {}
        self._order: list[KNode] | None = None
        self._seqs: list[int] | None = None
        self._next_seq = 1
        self.populate = populate
        self.owner = owner
        self.hidden = False     # listed by readdir? (control dirs are reachable but unlisted)

    # -- children -------------------------------------------------------------------------
    @property
    def populated(self) -> bool:
        return self._children is not None

    @property
    def children(self) -> dict[str, KNode]:
        if self._children is None:
            self._children = {}
            populate, self.populate = self.populate, None
            # building a directory on first look is not a change anybody could have cached
            changes = self.tree.changes
            was_changed = self in changes.dirs
            populate(self)
            if not was_changed:
                changes.dirs.discard(self)
                for child in self._children.values():
                    changes.dirs.discard(child)
        return self._children

    def get(self, name: str) -> KNode | None:
        return self.children.get(name)

    def add(self, node: KNode) -> KNode:
        children = self.children
        old = children.get(node.name)
        if old is not None:
            self.remove(node.name)
        node.parent = self
        node.seq = self._next_seq
        self._next_seq += 1
        children[node.name] = node
        self._order = None
        self.tree.changes.dirs.add(self)
        return node

    def remove(self, name: str) -> KNode | None:
        """Remove a child (recursively killing it); unpopulated dirs have nothing to remove."""
        if self._children is None:
            return None
        node = self._children.pop(name, None)
        if node is None:
            return None
        self._order = None
        _kill(node)
        self.tree.changes.removed.append((self, name, node))
        self.tree.changes.dirs.add(self)
        return node

    def mkdir(self, name: str, owner=None, populate=None) -> "KDir":
        existing = self.children.get(name)
        if isinstance(existing, KDir):
            return existing
        return self.add(KDir(self.tree, name, owner, populate))  # type: ignore[return-value]

    def listing(self, after_seq: int = 0) -> Iterator[KNode]:
        """Children in creation order, starting after a readdir position (stable under changes)."""
        if self._order is None:
            self._order = sorted(self.children.values(), key=lambda n: n.seq)
            self._seqs = [n.seq for n in self._order]
        order = self._order
        for i in range(bisect.bisect_right(self._seqs, after_seq), len(order)):
            node = order[i]
            if not (node.__class__ is KDir and node.hidden):
                yield node

    def walk(self, relpath: str) -> KNode | None:
        node: KNode | None = self
        for part in relpath.strip("/").split("/"):
            if not part:
                continue
            if not isinstance(node, KDir):
                return None
            node = node.get(part)
            if node is None:
                return None
        return node


class KAttr(KNode):
    """An attribute file: ``attr`` declares mode/show/store, ``owner`` is what they act on."""
    __slots__ = ("owner", "attr", "mode")

    def __init__(self, tree: "Tree", attr: "Attribute", owner, mode: int):
        super().__init__(tree, attr.name)
        self.owner = owner
        self.attr = attr
        self.mode = mode


class KLink(KNode):
    __slots__ = ("target", "_text")

    def __init__(self, tree: "Tree", name: str, target: KNode):
        super().__init__(tree, name)
        self.target = target
        self._text: str | None = None

    def text(self) -> str:
        """The relative path the kernel prints (sysfs_do_create_link / kernfs_get_target_path).
        Nodes never move, so it is computed once."""
        if self._text is None:
            self._text = relative_path(self.parent, self.target)
        return self._text


def relative_path(from_dir: KNode, target: KNode) -> str:
    """kernfs_get_target_path(): climb from the link's directory until reaching an ancestor
    of the target's *parent*, then descend -- so a link to an ancestor (root0/uport) or to
    its own directory (physical_node) reads ../../cxl_acpi.0, ../cxl_host_bridge.0."""
    def chain(n: KNode | None) -> list[KNode]:
        out = []
        while n is not None:
            out.append(n)
            n = n.parent
        return out[::-1]
    a, b = chain(from_dir), chain(target.parent)
    i = 0
    while i < len(a) and i < len(b) and a[i] is b[i]:
        i += 1
    ups = [".."] * (len(a) - i)
    downs = [n.name for n in b[i:]] + [target.name]
    return "/".join(ups + downs)


def _kill(node: KNode) -> None:
    node.alive = False
    if isinstance(node, KDir) and node._children is not None:
        for child in node._children.values():
            _kill(child)


class Tree:
    """The root of one sysfs instance, with its id allocator and change journal."""

    def __init__(self) -> None:
        self.ids = itertools.count(1)
        self.changes = Changes()
        self.root = KDir(self, "")
        assert self.root.id == 1   # FUSE_ROOT_ID

    def lookup(self, path: str) -> KNode | None:
        return self.root.walk(path)
