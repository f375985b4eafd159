"""Uevents as plain values (lib/kobject_uevent.c), and the synthetic-uevent parser (uevent_store)."""
from __future__ import annotations

import errno
import re
from dataclasses import dataclass

from .errors import KernelError

ACTIONS = ("add", "remove", "change", "move", "online", "offline", "bind", "unbind")

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_WORD = re.compile(r"^[A-Za-z0-9]+$")     # action_arg_word_end(): isalnum(), non-empty


@dataclass(frozen=True, slots=True)
class Uevent:
    action: str
    devpath: str
    subsystem: str
    env: tuple[tuple[str, str], ...]   # after ACTION/DEVPATH/SUBSYSTEM, before SEQNUM
    seqnum: int

    def properties(self) -> list[tuple[str, str]]:
        return [("ACTION", self.action), ("DEVPATH", self.devpath),
                ("SUBSYSTEM", self.subsystem), *self.env, ("SEQNUM", str(self.seqnum))]

    def get(self, key: str, default: str | None = None) -> str | None:
        for k, v in self.properties():
            if k == key:
                return v
        return default

    def as_dict(self) -> dict[str, str]:
        return dict(self.properties())


def parse_synthetic(buf: str) -> tuple[str, list[tuple[str, str]]]:
    """uevent_store: "ACTION [UUID [KEY=VALUE ...]]" -> (action, extra env); EINVAL otherwise."""
    text = buf[:-1] if buf.endswith("\n") else buf     # one terminator, as the count drops it
    parts = text.split(" ")
    if any(not p for p in parts) or parts[0] not in ACTIONS:
        raise KernelError(errno.EINVAL, f"synthetic uevent: unknown action '{parts[0] if parts else ''}'")
    action, rest = parts[0], parts[1:]
    if not rest:
        return action, [("SYNTH_UUID", "0")]
    if not _UUID.match(rest[0]):
        raise KernelError(errno.EINVAL, "synthetic uevent: invalid UUID")
    env = [("SYNTH_UUID", rest[0])]          # copied as written
    for arg in rest[1:]:
        key, sep, value = arg.partition("=")
        if not sep or not _WORD.match(key) or not _WORD.match(value):
            raise KernelError(errno.EINVAL, "synthetic uevent: invalid argument")
        env.append((f"SYNTH_ARG_{key}", value))
    return action, env
