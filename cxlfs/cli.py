"""Command line: cxlfs mount | umount | exec | dmesg | monitor | fault | abi | topology."""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time

from . import __version__


def _build(args):
    from .topology.build import build
    from .topology.spec import load
    topo = load(args.topology)
    options = parse_options(args.option or [])
    apply_options(topo, options)
    return build(topo, profile=args.abi or "mainline", options=options)


def parse_options(raw: list[str]) -> dict[str, str]:
    out = {}
    for opt in raw:
        key, sep, value = opt.partition("=")
        if not sep:
            raise ValueError(f"-o {opt}: expected key=value")
        out[key] = value
    return out


def apply_options(topo, options: dict[str, str]) -> None:
    """-o key=value: topology fields that are handy to override on the command line."""
    from .topology.spec import TopologyError, parse_size
    for key, value in options.items():
        if key == "block_size":
            topo.block_size = parse_size(value, "-o block_size")
        elif key == "auto_online_blocks":
            if value not in ("offline", "online", "online_kernel", "online_movable"):
                raise TopologyError("-o auto_online_blocks: must be offline, online, online_kernel or online_movable")
            topo.auto_online_blocks = value


def cmd_mount(args) -> int:
    from .topology.spec import TopologyError
    mnt = os.path.realpath(args.mountpoint)
    if not os.path.isdir(mnt):
        print(f"cxlfs mount: {args.mountpoint}: no such directory", file=sys.stderr)
        return 1
    try:
        from .abi.profiles import get_profile
        from .topology.spec import load
        options = parse_options(args.option or [])
        apply_options(load(args.topology), options)   # validate before forking: errors reach the user
        get_profile(args.abi or "mainline").parse_options(options)
    except (TopologyError, ValueError) as e:
        print(f"cxlfs mount: {e}", file=sys.stderr)
        return 1
    if args.foreground:
        return _serve(args, mnt, None)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.setsid()
        if os.fork():
            os._exit(0)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        try:
            code = _serve(args, mnt, w)
        except BaseException as e:   # report to the parent, whatever it was
            try:
                os.write(w, f"error: {e}\n".encode())
            except OSError:
                pass
            code = 1
        os._exit(code)
    os.close(w)
    os.waitpid(pid, 0)
    status = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        status += chunk
    if status.startswith(b"ok"):
        return 0
    print(f"cxlfs mount: {status.decode().strip().removeprefix('error: ') or 'daemon died'}", file=sys.stderr)
    return 1


def _serve(args, mnt: str, ready_fd: int | None) -> int:
    from .service import serve_forever
    kernel = _build(args)
    serve_forever(kernel, mnt, ready_fd=ready_fd, strict_open=args.strict_open)
    return 0


def cmd_umount(args) -> int:
    from .fuse.session import fuse_unmount
    mnt = os.path.realpath(args.mountpoint)
    if not fuse_unmount(mnt, lazy=False) and not fuse_unmount(mnt, lazy=True):
        print(f"cxlfs umount: {args.mountpoint}: not mounted", file=sys.stderr)
        return 1
    return 0


def cmd_exec(args) -> int:
    from .ns.runner import ExecError, run
    argv = args.command
    try:
        if args.udev_rules:
            from .ns.udev import run_with_udev
            return run_with_udev(args.mountpoint, argv, args.udev_rules, keep_caps=args.keep_caps,
                                 pin=not args.no_pin, settle_writes=args.settle_writes)
        return run(args.mountpoint, argv, keep_caps=args.keep_caps, pin=not args.no_pin)
    except ExecError as e:
        print(f"cxlfs exec: {e}", file=sys.stderr)
        return 126


def cmd_dmesg(args) -> int:
    from .ns.runner import control
    try:
        since = 0
        while True:
            reply = control(args.mountpoint, {"cmd": "dmesg", "since": since})
            for seq, level, text in reply.get("lines", []):
                if args.level == "debug" or level <= 6:
                    print(text)
                since = seq
            if not args.follow:
                return 0
            time.sleep(0.2)
    except KeyboardInterrupt:
        return 0


def cmd_monitor(args) -> int:
    from .service import socket_path
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(socket_path(args.mountpoint)))
    except OSError as e:
        print(f"cxlfs monitor: {args.mountpoint}: {e.strerror}", file=sys.stderr)
        return 1
    s.sendall(b'{"cmd": "monitor"}\n')
    f = s.makefile("rb")
    f.readline()
    if not args.json:
        print("monitor will print the received events for:\nKERNEL - the kernel uevent\n", flush=True)
    try:
        for line in f:
            ev = json.loads(line)
            if args.subsystem and ev["subsystem"] not in args.subsystem:
                continue
            if args.json:
                print(json.dumps(ev), flush=True)
                continue
            print(f"KERNEL[{time.monotonic():.6f}] {ev['action']:<8} {ev['devpath']} ({ev['subsystem']})")
            if args.property:
                for k, v in ev["properties"].items():
                    print(f"{k}={v}")
                print(flush=True)
    except KeyboardInterrupt:
        pass
    return 0


def cmd_iomem(args) -> int:
    from .ns.runner import control
    print(control(args.mountpoint, {"cmd": "iomem"})["text"], end="")
    return 0


def cmd_fault(args) -> int:
    from .ns.runner import control
    reply = control(args.mountpoint, {"cmd": "fault", "action": args.action, "target": args.target,
                                      "errno": args.errno, "count": args.count})
    if "error" in reply:
        print(f"cxlfs fault: {reply['error']}", file=sys.stderr)
        return 1
    print(json.dumps(reply.get("faults", reply)))
    return 0


def cmd_topology(args) -> int:
    from .topology.spec import TopologyError, embedded, load
    if args.action == "list":
        print("\n".join(embedded()))
        return 0
    try:
        topo = load(args.file)
    except TopologyError as e:
        print(f"cxlfs topology: {e}", file=sys.stderr)
        return 1
    print(f"{topo.name}: {len(topo.host_bridges)} host bridges, {len(topo.root_ports)} root ports, "
          f"{len(topo.switches)} switches, {len(topo.memdevs)} memdevs, {len(topo.windows)} windows")
    return 0


def cmd_abi(args) -> int:
    from .abi import profiles
    if args.action == "list":
        for name, p in profiles.PROFILES.items():
            print(f"{name:<22} {p.title}")
        return 0
    if args.action == "diff":
        from .abi.diff import abi_diff
        try:
            print(abi_diff(args.a, args.b), end="")
        except ValueError as e:
            print(f"cxlfs abi: {e}", file=sys.stderr)
            return 1
        return 0
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cxlfs", description=__doc__)
    parser.add_argument("--version", action="version", version=f"cxlfs {__version__}")
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("mount", help="mount a fake sysfs tree")
    p.add_argument("mountpoint")
    p.add_argument("--topology", "-t", default=None, help="embedded topology name or TOML file (default: cxl_test)")
    p.add_argument("--abi", default=None, help="ABI profile (see `cxlfs abi list`)")
    p.add_argument("--option", "-o", action="append", help="key=value (block_size, auto_online_blocks, profile options)")
    p.add_argument("--foreground", "-f", action="store_true", help="stay attached")
    p.add_argument("--strict-open", action="store_true",
                   help="answer open() to refuse wrong-direction opens (slower reads)")
    p.set_defaults(fn=cmd_mount)

    p = sub.add_parser("umount", help="unmount")
    p.add_argument("mountpoint")
    p.set_defaults(fn=cmd_umount)

    p = sub.add_parser("exec", help="run a command where the mount is /sys")
    p.add_argument("mountpoint")
    p.add_argument("--udev-rules", default=None, help="run systemd-udevd with only the rules in DIR")
    p.add_argument("--keep-caps", action="store_true", help="keep CAP_DAC_OVERRIDE (root then bypasses modes)")
    p.add_argument("--no-pin", action="store_true", help="do not run the command on the daemon's CPU")
    p.add_argument("--settle-writes", action="store_true",
                   help="with --udev-rules: a write returns only after udevd processed its uevents")
    p.set_defaults(fn=cmd_exec, command=[])

    p = sub.add_parser("dmesg", help="print the kernel log of a mount")
    p.add_argument("mountpoint")
    p.add_argument("--follow", "-w", action="store_true")
    p.add_argument("--level", choices=("info", "debug"), default="info")
    p.set_defaults(fn=cmd_dmesg)

    p = sub.add_parser("monitor", help="print uevents (like udevadm monitor --kernel)")
    p.add_argument("mountpoint")
    p.add_argument("--property", "-p", action="store_true")
    p.add_argument("--json", action="store_true")
    p.add_argument("--subsystem", "-s", action="append")
    p.set_defaults(fn=cmd_monitor)

    p = sub.add_parser("iomem", help="print the /proc/iomem view of the model")
    p.add_argument("mountpoint")
    p.set_defaults(fn=cmd_iomem)

    p = sub.add_parser("fault", help="inject faults (offline EBUSY, probe errors)")
    p.add_argument("mountpoint")
    p.add_argument("action", choices=("offline-busy", "probe-fail", "clear", "list"))
    p.add_argument("target", nargs="?", default="", help="memoryN, a driver name, or empty for all")
    p.add_argument("--errno", default="EBUSY")
    p.add_argument("--count", type=int, default=-1, help="how many times (-1: until cleared)")
    p.set_defaults(fn=cmd_fault)

    p = sub.add_parser("topology", help="list or check topologies")
    p.add_argument("action", choices=("list", "check"))
    p.add_argument("file", nargs="?")
    p.set_defaults(fn=cmd_topology)

    p = sub.add_parser("abi", help="ABI profiles")
    p.add_argument("action", choices=("list", "diff"))
    p.add_argument("a", nargs="?")
    p.add_argument("b", nargs="?")
    p.set_defaults(fn=cmd_abi)

    argv = list(sys.argv[1:] if argv is None else argv)
    command = None
    if argv and argv[0] == "exec":
        argv, command = split_exec(argv)
    args = parser.parse_args(argv)
    if command is not None:
        args.command = command
    from .ns.runner import ExecError
    try:
        return args.fn(args)
    except ExecError as e:          # no daemon answers, the mount is not cxlfs, ...
        print(f"cxlfs {args.cmd}: {e}", file=sys.stderr)
        return 1


EXEC_VALUE_OPTIONS = ("--udev-rules",)


def split_exec(argv: list[str]) -> tuple[list[str], list[str]]:
    """`exec MNT [opts] -- CMD...` or `exec [opts] MNT CMD...`: split off the command."""
    if "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1:]
    i = 1
    while i < len(argv):
        token = argv[i]
        if token in EXEC_VALUE_OPTIONS:
            i += 2
        elif token.startswith("-"):
            i += 1
        else:
            return argv[:i + 1], argv[i + 1:]
    return argv, []


if __name__ == "__main__":
    sys.exit(main())
