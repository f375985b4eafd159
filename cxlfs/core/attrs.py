"""Attributes declared next to their behaviour, as DEVICE_ATTR_RW(name) with name_show/name_store.

    class MemoryBlock(Device):
        @attr.rw
        def state(self) -> str:
            return "online\\n" if self.online else "offline\\n"

        @state.store
        def state(self, buf: WriteBuf) -> None:
            ...

The decorated functions do not stay in the class namespace: ``SysfsObject.__init_subclass__``
moves every ``Attribute`` into ``cls.sysfs_attributes`` (ordered, inherited, overridable by
name), so instances can keep plain fields with the same names (``self.state``).

``visible(obj) -> mode | 0`` is the kernel's is_visible(): 0 hides the file, a mode
replaces the declared one.  ``depends(obj)`` names other objects whose state the show()
text also reads; the FUSE adapter drops a cached page when any of them changes.
"""
from __future__ import annotations

from typing import Callable, Iterable

from .parse import WriteBuf

Show = Callable[[object], str]
Store = Callable[[object, WriteBuf], "int | None"]


class Attribute:
    __slots__ = ("name", "mode", "show", "_store", "visible", "group", "depends", "doc", "values")

    def __init__(self, name: str, mode: int, show: Show | None = None, store: Store | None = None,
                 *, visible: Callable[[object], int] | None = None, group: str | None = None,
                 depends: Callable[[object], Iterable[object]] | None = None,
                 values: tuple[str, ...] = (), doc: str = ""):
        self.name = name
        self.mode = mode
        self.show = show
        self._store = store
        self.visible = visible
        self.group = group
        self.depends = depends
        self.values = values      # accepted strings, for docs and `cxlfs abi diff`
        self.doc = doc

    @property
    def store_fn(self) -> Store | None:
        return self._store

    def store(self, fn: Store) -> "Attribute":
        """Decorator: attach the store() of a read-write attribute."""
        self._store = fn
        return self

    @property
    def path(self) -> str:
        return f"{self.group}/{self.name}" if self.group else self.name

    def mode_for(self, obj) -> int:
        if self.visible is None:
            return self.mode
        m = self.visible(obj)
        if m is True:
            return self.mode
        return int(m or 0)

    def __repr__(self) -> str:
        return f"<Attribute {self.path} {self.mode:04o}>"


def _decorator(mode: int):
    def make(fn=None, *, name: str | None = None, group: str | None = None, visible=None,
             depends=None, values: tuple[str, ...] = ()):
        def wrap(f):
            return Attribute(name or f.__name__, mode, show=f if mode & 0o444 else None,
                             store=None if mode & 0o444 else f, visible=visible, group=group,
                             depends=depends, values=values, doc=(f.__doc__ or "").strip())
        return wrap(fn) if fn is not None else wrap
    return make


class _Attr:
    """``attr.ro``, ``attr.rw``, ``attr.wo``, ``attr.admin_ro`` — usable bare or with keywords."""
    ro = staticmethod(_decorator(0o444))
    rw = staticmethod(_decorator(0o644))
    wo = staticmethod(_decorator(0o200))
    admin_ro = staticmethod(_decorator(0o400))
    admin_rw = staticmethod(_decorator(0o600))


attr = _Attr()


class _Namespace(dict):
    """Class-body namespace that refuses a file declaration and a method/property sharing a
    name: the declaration leaves the namespace, so the other would silently vanish."""

    def __setitem__(self, key, value):
        old = self.get(key)
        if old is not None and isinstance(old, Attribute) != isinstance(value, Attribute) and \
                not key.startswith("__"):
            raise TypeError(f"'{key}' is both a sysfs attribute and a class member; rename the member")
        super().__setitem__(key, value)


class _SysfsMeta(type):
    @classmethod
    def __prepare__(mcls, name, bases, **kw):
        return _Namespace()

    def __new__(mcls, name, bases, ns, **kw):
        return super().__new__(mcls, name, bases, dict(ns), **kw)


class SysfsObject(metaclass=_SysfsMeta):
    """Anything with attribute files.  Assigning a public field marks the object changed."""

    sysfs_attributes: dict[str, Attribute] = {}
    hidden_attributes: tuple[str, ...] = ()   # inherited files this type does not have
    _changes = None   # the Tree's Changes, set when the object is registered

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        merged: dict[str, Attribute] = {}
        for base in reversed(cls.__mro__[1:]):
            merged.update(vars(base).get("sysfs_attributes", {}))
        for name in cls.hidden_attributes:
            merged.pop(name, None)
        for key, value in list(vars(cls).items()):
            if isinstance(value, Attribute):
                merged.pop(value.path, None)
                merged[value.path] = value
                delattr(cls, key)
        cls.sysfs_attributes = merged

    def __setattr__(self, name: str, value) -> None:
        object.__setattr__(self, name, value)
        if name[0] != "_":
            changes = self._changes
            if changes is not None:
                changes.dirty.add(self)

    def touch(self) -> None:
        """Mark changed after an in-place mutation (list/dict/set fields)."""
        if self._changes is not None:
            self._changes.dirty.add(self)

    def attributes(self) -> Iterable[Attribute]:
        return self.sysfs_attributes.values()

    __hash__ = object.__hash__
