"""devtmpfs for `cxlfs exec` namespaces: char nodes appear and vanish with their devices.

The kernel creates /dev nodes synchronously in device_add(); so does this, from the
daemon, before the write that added the device returns.  Roots are paths such as
/proc/<pid>/root/dev, so the daemon reaches a namespace's private /dev from outside.
"""
from __future__ import annotations

import os
import stat

from .core.kernel import Kernel
from .core.kernfs import KLink
from .core.uevent import Uevent


class Devtmpfs:
    def __init__(self, kernel: Kernel):
        self.kernel = kernel
        self.roots: list[str] = []

    def attach(self, root: str) -> int:
        if not os.path.isdir(root):
            raise FileNotFoundError(root)
        self.roots.append(root)
        count = 0
        for link in list(self.kernel.dev_char.listing()):
            dev = link.target.owner if isinstance(link, KLink) else None
            if dev is not None and dev.devt is not None:
                self._mknod(root, dev.devnode_name(), dev.devt)
                count += 1
        return count

    def on_uevents(self, events: list[Uevent]) -> None:
        if not self.roots:
            return
        for ev in events:
            props = ev.as_dict()
            name = props.get("DEVNAME")
            if not name or ev.action not in ("add", "remove"):
                continue
            for root in list(self.roots):
                if not os.path.isdir(root):
                    self.roots.remove(root)       # the namespace is gone
                    continue
                if ev.action == "add":
                    self._mknod(root, name, (int(props["MAJOR"]), int(props["MINOR"])))
                else:
                    try:
                        os.unlink(os.path.join(root, name))
                    except OSError:
                        pass

    @staticmethod
    def _mknod(root: str, name: str, devt: tuple[int, int]) -> None:
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        try:
            os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(*devt))
        except PermissionError:
            open(path, "w").close()          # unprivileged: a placeholder libcxl can stat
