"""`cxlfs exec --udev-rules DIR`: the real systemd-udevd, fed genuine kernel uevents.

Layout: the runner forks a child that unshares mount, network and PID namespaces; the
child's child is PID 1 there.  PID 1 builds the private /sys, /dev, /run (see runner.py),
hides the distribution's rules and binds DIR over /etc/udev/rules.d, injects the daemon's
uevents into its network namespace's kernel (see inject.py), starts systemd-udevd with
SYSTEMD_DEVICE_VERIFY_SYSFS=0, runs CMD, and when CMD exits everything in the namespace
dies with it.  Nothing touches the host's /sys, /dev, /run or udev.
"""
from __future__ import annotations

import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

from ..service import socket_path
from . import syscalls as sc
from .inject import NETLINK_KOBJECT_UEVENT, NLMSG_HDR, Injector, follow
from .runner import ExecError, check_mount, control, pin_to_daemon, setup_namespace

UDEVD_PATHS = ("/lib/systemd/systemd-udevd", "/usr/lib/systemd/systemd-udevd")
DISTRO_RULES = ("/usr/lib/udev/rules.d", "/lib/udev/rules.d")
UDEV_GROUP = 2
KERNEL_GROUP = 1


def find_udevd() -> str:
    for path in UDEVD_PATHS:
        if os.access(path, os.X_OK):
            return path
    raise ExecError("systemd-udevd not found (install the udev package)")


def run_with_udev(mountpoint: str, argv: list[str], rules_dir: str, *, keep_caps: bool = False,
                  pin: bool = True, settle_writes: bool = False) -> int:
    if os.geteuid() != 0:
        raise ExecError("--udev-rules needs root (user namespaces: not implemented for udev)")
    mountpoint = os.path.realpath(mountpoint)
    rules_dir = os.path.realpath(rules_dir)
    if not os.path.isdir(rules_dir):
        raise ExecError(f"{rules_dir}: not a directory")
    mount_st, daemon = check_mount(mountpoint)
    udevd = find_udevd()
    argv = argv or [os.environ.get("SHELL", "/bin/bash")]
    ctl = str(socket_path(mountpoint))
    pid = os.fork()
    if pid == 0:
        try:
            code = _outer_child(mountpoint, mount_st, daemon, argv, rules_dir, udevd, ctl,
                                keep_caps, pin, settle_writes)
        except BaseException as e:      # never fall through into the parent's code
            print(f"cxlfs exec: {e}", file=sys.stderr)
            code = 126
        os._exit(code)
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGQUIT)}
    try:
        _, status = os.waitpid(pid, 0)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return os.waitstatus_to_exitcode(status) if not os.WIFSIGNALED(status) else 128 + os.WTERMSIG(status)


def _outer_child(mountpoint, mount_st, daemon, argv, rules_dir, udevd, ctl, keep_caps, pin,
                 settle_writes) -> int:
    sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
    sc.unshare(sc.CLONE_NEWNS | sc.CLONE_NEWNET | sc.CLONE_NEWPID)
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    init = os.fork()
    if init == 0:
        os.close(ready_r)
        os.close(go_w)
        try:
            sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
            setup_namespace(mountpoint, mount_st)
            sc.mount("proc", "/proc", "proc", sc.MS_NOSUID | sc.MS_NODEV)
            _hide_distro_rules(rules_dir)
        except Exception as e:
            os.write(ready_w, f"error: {e}".encode())
            os._exit(126)
        os.write(ready_w, b"ok")
        os.close(ready_w)
        os.read(go_r, 1)
        os._exit(_pid1(argv, udevd, ctl, daemon, keep_caps, pin, settle_writes))
    os.close(ready_w)
    os.close(go_r)
    status = os.read(ready_r, 4096).decode()
    if status != "ok":
        os.waitpid(init, 0)
        raise ExecError(status.removeprefix("error: "))
    reply = control(mountpoint, {"cmd": "devtmpfs", "path": f"/proc/{init}/root/dev"})
    if not reply.get("ok"):
        os.kill(init, signal.SIGKILL)
        raise ExecError(f"could not populate /dev: {reply.get('error')}")
    os.write(go_w, b"g")
    _, st = os.waitpid(init, 0)
    return os.WEXITSTATUS(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st)


def _hide_distro_rules(rules_dir: str) -> None:
    for d in DISTRO_RULES:
        if os.path.isdir(d) and not os.path.islink(d):
            try:
                sc.mount("tmpfs", d, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, "mode=755")
            except OSError:
                pass      # /lib/udev may be the same directory as /usr/lib/udev
    os.makedirs("/etc/udev/rules.d", exist_ok=True)
    sc.mount(rules_dir, "/etc/udev/rules.d", None, sc.MS_BIND)


def _pid1(argv, udevd, ctl, daemon, keep_caps, pin, settle_writes) -> int:
    """PID 1 of the namespace: injector, udevd, the command; reaps everything."""
    env = dict(os.environ, SYSTEMD_DEVICE_VERIFY_SYSFS="0", SYSTEMD_IGNORE_CHROOT="1")
    os.environ.update(env)
    if pin:
        pin_to_daemon(daemon)
    waiter = SettleWaiter() if settle_writes else None
    injector = Injector()
    ready = threading.Event()

    def deliver(event: dict) -> None:
        if waiter is not None:
            waiter.deliver(injector, event)
        else:
            injector.inject(event)

    # the event reaches the namespace's netlink sockets before the write that caused it
    # returns (as in the kernel), so `udevadm settle` after a write sees it
    ack = "processed" if settle_writes else "injected"
    t = threading.Thread(target=_follow_quietly, args=(ctl, deliver, ack, ready), daemon=True)
    t.start()
    ready.wait(5)
    if not keep_caps:
        sc.drop_dac_override()
    udev = subprocess.Popen([udevd, "--resolve-names=never"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not os.path.exists("/run/udev/control"):
        if udev.poll() is not None or time.monotonic() > deadline:
            print("cxlfs exec: systemd-udevd did not start", file=sys.stderr)
            return 126
        time.sleep(0.01)
    try:
        cmd = subprocess.Popen(argv, env=env)
    except OSError as e:
        print(f"cxlfs exec: {argv[0]}: {e.strerror}", file=sys.stderr)
        return 127
    code = None
    while code is None:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        if pid == cmd.pid:
            code = os.waitstatus_to_exitcode(status)
            code = code if code >= 0 else 128 - code
    udev.terminate()
    return code if code is not None else 1


def _follow_quietly(ctl, deliver, ack, ready) -> None:
    try:
        follow(ctl, deliver, ack=ack, ready=ready)
    except OSError:
        pass


class SettleWaiter:
    """Inject one event and wait until udevd has processed it (its re-broadcast on the
    udev group carries the kernel's SEQNUM, which the kernel group told us)."""

    def __init__(self, timeout: float = 10.0):
        self.timeout = timeout
        self.kernel = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_KOBJECT_UEVENT)
        self.kernel.bind((0, KERNEL_GROUP))
        self.udev = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_KOBJECT_UEVENT)
        self.udev.bind((0, UDEV_GROUP))

    def deliver(self, injector: Injector, event: dict) -> None:
        injector.inject(event)
        seqnum = self._kernel_seqnum(event)
        if seqnum is None:
            return
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.udev], [], [], max(0.0, deadline - time.monotonic()))
            if not r:
                return
            props = parse_libudev(self.udev.recv(1 << 16))
            if props.get("SEQNUM") == seqnum:
                return

    def _kernel_seqnum(self, event: dict) -> str | None:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.kernel], [], [], max(0.0, deadline - time.monotonic()))
            if not r:
                return None
            data = self.kernel.recv(1 << 16)
            fields = data.split(b"\0")
            props = dict(f.decode(errors="replace").split("=", 1) for f in fields[1:] if b"=" in f)
            if props.get("DEVPATH") == event["devpath"] and props.get("ACTION") == event["action"]:
                return props.get("SEQNUM")
        return None


def parse_libudev(data: bytes) -> dict[str, str]:
    """Properties of a libudev-format message (udevd's re-broadcast on the udev group)."""
    if not data.startswith(b"libudev\0"):
        return {}
    off, length = struct.unpack_from("=II", data, 16)
    fields = data[off:off + length].split(b"\0")
    return dict(f.decode(errors="replace").split("=", 1) for f in fields if b"=" in f)


__all__ = ["run_with_udev", "NLMSG_HDR"]
