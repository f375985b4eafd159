"""One FUSE connection: mount through fusermount3, read requests, send replies and notifications."""
from __future__ import annotations

import errno
import os
import shutil
import socket
import queue
import subprocess
import threading
import time
from typing import Awaitable, Protocol

import trio

from . import protocol as P

# READ requests carry at most max_write bytes of payload plus two headers
MAX_WRITE = 64 * 1024
READ_BUFFER = MAX_WRITE + 8192


class FuseError(Exception):
    """Raised by a handler: the request is answered with this errno."""

    def __init__(self, err: int):
        super().__init__(os.strerror(err))
        self.errno = err


class Handler(Protocol):
    """Answers one request: reply bytes, an awaitable of them, or None (no reply)."""

    def handle(self, req: P.Request) -> bytes | Awaitable[bytes] | None: ...


class MountError(RuntimeError):
    pass


def fusermount(mountpoint: str, options: str) -> tuple[int, socket.socket]:
    """Mount through the setuid helper; returns the /dev/fuse fd and the helper's socket.

    The socket must stay open: with auto_unmount the helper unmounts once it closes,
    so a crashed daemon never leaves a dead mount behind.
    """
    helper = shutil.which("fusermount3")
    if helper is None:
        raise MountError("fusermount3 not found (install the fuse3 package)")
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    env = dict(os.environ, _FUSE_COMMFD=str(theirs.fileno()))
    proc = subprocess.Popen([helper, "-o", options, "--", mountpoint], env=env,
                            pass_fds=(theirs.fileno(),), stderr=subprocess.PIPE)
    theirs.close()
    try:
        _, fds, _, _ = socket.recv_fds(ours, 1, 1)
    except OSError:
        fds = []
    if not fds:
        err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
        proc.wait()
        ours.close()
        raise MountError(err or f"fusermount3 failed on {mountpoint}")
    if proc.stderr:
        proc.stderr.close()
    return fds[0], ours


def fuse_unmount(mountpoint: str, lazy: bool = True) -> bool:
    args = ["fusermount3", "-u"] + (["-z"] if lazy else []) + [mountpoint]
    return subprocess.run(args, stderr=subprocess.DEVNULL).returncode == 0


class Session:
    """Reads requests from a mounted /dev/fuse fd and dispatches them to a Handler.

    Handlers run synchronously on the trio thread; a handler that must wait (a write whose
    invalidations have to land before it returns) returns an awaitable, run as a task.
    Notifications may block in the kernel on page locks held by requests still waiting for
    an answer from us, so they are written from worker threads.
    """

    def __init__(self, fd: int, handler: Handler):
        self.fd = fd
        self.handler = handler
        self.nursery: trio.Nursery | None = None
        self.requests = 0
        self.per_op: dict[int, list] = {}      # opcode -> [count, seconds in the handler]
        self._notifier: threading.Thread | None = None
        self._queue: queue.SimpleQueue | None = None

    def send(self, data: bytes) -> None:
        try:
            os.write(self.fd, data)
        except OSError as e:
            # ENOENT: the request was interrupted and is gone; ENODEV: unmounted
            if e.errno not in (errno.ENOENT, errno.ENODEV):
                raise

    def _notify_blocking(self, message: bytes) -> int:
        try:
            os.write(self.fd, message)
            return 0
        except OSError as e:
            return e.errno  # ENOENT: the kernel does not know the inode/entry: nothing cached

    def notify_later(self, messages: list[bytes]) -> None:
        """Fire and forget, in order, from one long-lived thread (the written file's own page:
        its lock is released only once we have answered the write)."""
        if self._notifier is None:
            self._queue = queue.SimpleQueue()
            self._notifier = threading.Thread(target=self._notify_loop, name="fuse-notify", daemon=True)
            self._notifier.start()
        for m in messages:
            self._queue.put(m)

    def _notify_loop(self) -> None:
        while True:
            m = self._queue.get()
            if m is None:
                return
            self._notify_blocking(m)

    async def notify(self, messages: list[bytes]) -> None:
        """Send notifications from one worker thread and wait until the kernel applied them."""
        if not messages:
            return

        def run() -> None:
            for m in messages:
                self._notify_blocking(m)
        await trio.to_thread.run_sync(run)

    async def serve(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        os.set_blocking(self.fd, False)
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            task_status.started()
            while True:
                await trio.lowlevel.wait_readable(self.fd)
                while True:
                    try:
                        buf = os.read(self.fd, READ_BUFFER)
                    except BlockingIOError:
                        break
                    except OSError as e:
                        if e.errno in (errno.ENOENT, errno.EINTR):
                            continue
                        if e.errno == errno.ENODEV:  # unmounted
                            nursery.cancel_scope.cancel()
                            return
                        raise
                    self.dispatch(P.Request.parse(buf))

    def dispatch(self, req: P.Request) -> None:
        self.requests += 1
        t0 = time.perf_counter()
        try:
            result = self.handler.handle(req)
        except FuseError as e:
            self.send(P.reply(req.unique, error=e.errno))
            return
        finally:
            acc = self.per_op.setdefault(req.opcode, [0, 0.0])
            acc[0] += 1
            acc[1] += time.perf_counter() - t0
        if result is None:          # FORGET and friends: no reply
            return
        if isinstance(result, (bytes, bytearray)):
            self.send(P.reply(req.unique, result))
            return
        self.nursery.start_soon(self._finish, req.unique, result)

    async def _finish(self, unique: int, pending: Awaitable[bytes]) -> None:
        try:
            data = await pending
        except FuseError as e:
            self.send(P.reply(unique, error=e.errno))
        else:
            self.send(P.reply(unique, data))

    def close(self) -> None:
        if self._queue is not None:
            self._queue.put(None)
        try:
            os.close(self.fd)
        except OSError:
            pass

