"""Char-device backed devices: the `dev` file, MAJOR/MINOR/DEVNAME and /sys/dev/char links."""
from __future__ import annotations

from .attrs import attr
from .device import Device


class CharDevice(Device):
    @attr.ro
    def dev(self) -> str:
        major, minor = self.devt
        return f"{major}:{minor}\n"
