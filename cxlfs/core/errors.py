"""The one error type the model raises: a kernel errno, as a store() would return it."""
from __future__ import annotations

import errno as _errno
import os


class KernelError(Exception):
    """A negative errno from a show/store/probe, e.g. ``KernelError(errno.EBUSY)``.

    ``message`` is optional extra text for the kernel log; the caller decides whether
    it is logged (stores usually log through the device, as drivers do with dev_err).
    """

    def __init__(self, err: int, message: str = ""):
        super().__init__(message or os.strerror(err))
        self.errno = err
        self.message = message

    @property
    def name(self) -> str:
        return _errno.errorcode.get(self.errno, str(self.errno))

    def __repr__(self) -> str:
        return f"KernelError({self.name}{', ' + repr(self.message) if self.message else ''})"


# -EPROBE_DEFER is kernel-internal; bind_store reports it as EAGAIN
EPROBE_DEFER = 517
