"""The daemon: one mount, its FUSE session, the control socket and the uevent fan-out (trio)."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
from pathlib import Path

import trio

from .core.kernel import Kernel
from .core.uevent import Uevent
from .devtmpfs import Devtmpfs
from .fuse.adapter import SysfsFS
from .fuse.session import Session, fuse_unmount, fusermount


def runtime_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR")
    path = Path(base) / "cxlfs" if base else Path(f"/tmp/.cxlfs-{os.getuid()}")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def socket_path(mountpoint: str) -> Path:
    """Where the daemon serving ``mountpoint`` listens (a path, so it survives netns changes)."""
    key = hashlib.sha1(os.path.realpath(mountpoint).encode()).hexdigest()[:16]
    return runtime_dir() / f"{key}.sock"


def uevent_json(ev: Uevent) -> dict:
    return {"seqnum": ev.seqnum, "action": ev.action, "devpath": ev.devpath,
            "subsystem": ev.subsystem, "properties": ev.as_dict()}


class Daemon:
    def __init__(self, kernel: Kernel, mountpoint: str, *, strict_open: bool = False,
                 allow_other: bool | None = None):
        self.kernel = kernel
        self.mountpoint = os.path.realpath(mountpoint)
        if allow_other is None:
            allow_other = os.getuid() == 0 or _user_allow_other()
        uid, gid = (0, 0) if os.getuid() == 0 else (os.getuid(), os.getgid())
        self.fs = SysfsFS(kernel, uid=uid, gid=gid, strict_open=strict_open,
                          on_change=self.after_change)
        self.options = ",".join(["rw", "nosuid", "nodev", "noatime", "default_permissions",
                                 "fsname=cxlfs", "subtype=cxlfs"] + (["allow_other"] if allow_other else []))
        self.subscribers: list[Subscriber] = []
        self.session: Session | None = None
        self.sock_path = socket_path(self.mountpoint)
        self.devtmpfs = Devtmpfs(kernel)

    # called by the adapter after each request that may have changed the model
    def after_change(self, writer_pid: int = 0):
        """Publish new uevents (devtmpfs first, synchronously, as device_add does).  Returns
        an awaitable when a subscriber asked to hold writes until it has handled them --
        except writes by udevd itself: its event could not finish before its write does."""
        if not self.kernel.uevents:
            return None
        events = self.kernel.drain_uevents()
        self.devtmpfs.on_uevents(events)
        holders = []
        from_udevd = None
        for sub in list(self.subscribers):
            for ev in events:
                try:
                    sub.chan.send_nowait(ev)
                except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                    self.subscribers.remove(sub)
                    break
            else:
                if sub.ack == "processed":
                    # udevd's own writes cannot wait for udevd to finish the event they are part of
                    if from_udevd is None:
                        from_udevd = _is_udevd(writer_pid)
                    if not from_udevd:
                        holders.append(sub)
                elif sub.ack:
                    holders.append(sub)
        if not holders:
            return None
        return self._wait_acked(holders, events[-1].seqnum)

    async def _wait_acked(self, holders: list["Subscriber"], seqnum: int) -> None:
        with trio.move_on_after(15):
            for sub in holders:
                await sub.wait_for(seqnum)

    async def apply_model_change(self) -> None:
        """For changes made outside a FUSE request (control socket): invalidate, then publish."""
        await self.session.notify(self.fs.collect_invalidations())
        self.after_change()

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        # A FUSE round trip between two CPUs costs ~140 us on small VMs (a cross-CPU wakeup
        # each way), on one CPU ~20 us: the daemon stays on one CPU and `cxlfs exec` puts
        # its command on the same one (see docs/design.md, "Latency").
        self.cpu = max(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {self.cpu})
        fd, helper = fusermount(self.mountpoint, self.options)
        self.session = Session(fd, self.fs)
        self.fs.session = self.session
        self.kernel.drain_uevents()      # boot-time events: nobody was listening yet
        self.kernel.tree.changes.drain()
        try:
            async with trio.open_nursery() as nursery:
                async def serve(task_status=trio.TASK_STATUS_IGNORED):
                    await self.session.serve(task_status=task_status)
                    nursery.cancel_scope.cancel()     # unmounted
                await nursery.start(serve)
                await nursery.start(self._control_server)
                nursery.start_soon(self._signals, nursery)
                # the kernel sent INIT at mount time; one stat proves requests are answered
                await trio.to_thread.run_sync(os.stat, self.mountpoint)
                task_status.started(self)
        finally:
            self.session.close()
            helper.close()
            try:
                self.sock_path.unlink()
            except FileNotFoundError:
                pass

    async def _signals(self, nursery: trio.Nursery) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for _ in signals:
                await trio.to_thread.run_sync(fuse_unmount, self.mountpoint)
                nursery.cancel_scope.cancel()
                return

    # ==== control socket =========================================================================
    async def _control_server(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        try:
            self.sock_path.unlink()
        except FileNotFoundError:
            pass
        listener = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        await listener.bind(str(self.sock_path))
        os.chmod(self.sock_path, 0o600)
        listener.listen(16)
        task_status.started()
        async with trio.open_nursery() as nursery:
            while True:
                conn, _ = await listener.accept()
                nursery.start_soon(self._client, trio.SocketStream(conn))

    async def _client(self, stream: trio.SocketStream) -> None:
        from .control import handle_command   # the command table lives next to its docs
        buf = b""
        try:
            async for chunk in stream:
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    try:
                        request = json.loads(line)
                    except ValueError:
                        await _send(stream, {"error": "bad json"})
                        continue
                    if request.get("cmd") == "monitor":
                        ack = request.get("ack")
                        await self._monitor(stream, ack if ack in ("injected", "processed") else None)
                        return
                    reply = await handle_command(self, request)
                    await _send(stream, reply)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await stream.aclose()

    async def _monitor(self, stream: trio.SocketStream, ack: str | None) -> None:
        send, receive = trio.open_memory_channel(100000)
        sub = Subscriber(send, ack)
        self.subscribers.append(sub)
        await _send(stream, {"ok": True})

        async def read_acks() -> None:
            buf = b""
            async for chunk in stream:
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    try:
                        sub.ack_up_to(int(json.loads(line)["ack"]))
                    except (ValueError, KeyError, TypeError):
                        continue
            nursery.cancel_scope.cancel()

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read_acks)
                async with receive:
                    async for ev in receive:
                        await _send(stream, uevent_json(ev))
        finally:
            if sub in self.subscribers:
                self.subscribers.remove(sub)
            sub.ack_up_to(1 << 62)          # gone: nobody waits for it any more


def _is_udevd(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/comm") as f:
            comm = f.read().strip()
    except OSError:
        return False
    return comm in ("systemd-udevd", "(udev-worker)", "udevd") or comm.startswith("udev")


class Subscriber:
    """A uevent listener.  With ``ack`` ("injected": the event is in the namespace's netlink
    sockets, as the kernel's would be before write() returns; "processed": udevd is done
    with it) the writes causing its events wait for its acknowledgements."""

    def __init__(self, chan: trio.MemorySendChannel, ack: str | None):
        self.chan = chan
        self.ack = ack
        self.acked = 0
        self.waiters: list[tuple[int, trio.Event]] = []    # one per held write

    async def wait_for(self, seqnum: int) -> None:
        if self.acked >= seqnum:
            return
        event = trio.Event()
        self.waiters.append((seqnum, event))
        await event.wait()

    def ack_up_to(self, seqnum: int) -> None:
        self.acked = max(self.acked, seqnum)
        still = []
        for want, event in self.waiters:
            (event.set() if want <= self.acked else still.append((want, event)))
        self.waiters = still


async def _send(stream: trio.SocketStream, obj) -> None:
    await stream.send_all(json.dumps(obj).encode() + b"\n")


def _user_allow_other() -> bool:
    try:
        return any(line.strip() == "user_allow_other" for line in open("/etc/fuse.conf"))
    except OSError:
        return False


def serve_forever(kernel: Kernel, mountpoint: str, *, ready_fd: int | None = None, **kw) -> None:
    """Run the daemon in this process until unmounted; write b'ok' to ready_fd once mounted."""
    async def main():
        daemon = Daemon(kernel, mountpoint, **kw)
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            if ready_fd is not None:
                os.write(ready_fd, b"ok\n")
                os.close(ready_fd)
    try:
        trio.run(main)
    except OSError as e:
        if e.errno != errno.ENODEV:
            raise
