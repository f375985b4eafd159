"""Commands of the control socket (``cxlfs dmesg``, ``cxlfs fault``, ``cxlfs stats``...)."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .service import Daemon


async def handle_command(daemon: "Daemon", request: dict) -> dict:
    cmd = request.get("cmd")
    kernel = daemon.kernel
    if cmd == "ping":
        return {"ok": True, "pid": __import__("os").getpid(), "mountpoint": daemon.mountpoint,
                "cpu": daemon.cpu}
    if cmd == "dmesg":
        since = int(request.get("since", 0))
        lines = kernel.log.since(since)
        return {"ok": True, "lines": [[line.seq, line.level, line.format()] for line in lines]}
    if cmd == "iomem":
        from .iomem import iomem_text
        return {"ok": True, "text": iomem_text(kernel)}
    if cmd == "stats":
        return {"ok": True, "stats": dict(daemon.fs.stats, requests=daemon.session.requests,
                                          cached_pages=len(daemon.fs.served),
                                          known_inodes=len(daemon.fs.nodes)),
                "per_op": {str(k): [n, round(t, 6)] for k, (n, t) in daemon.session.per_op.items()}}
    if cmd == "devtmpfs":
        try:
            count = daemon.devtmpfs.attach(request["path"])
        except OSError as e:
            return {"error": str(e)}
        return {"ok": True, "nodes": count}
    hook = COMMANDS.get(cmd)
    if hook is None:
        return {"error": f"unknown command {cmd!r}"}
    try:
        reply = hook(kernel, request)
    except (ValueError, KeyError) as e:
        return {"error": str(e)}
    await daemon.apply_model_change()
    return reply


def fault(kernel, request: dict) -> dict:
    """offline-busy [memoryN]: offlining fails (EBUSY, as with unmovable pages);
    probe-fail DRIVER: the driver's next probes fail with --errno; clear; list."""
    import errno as errno_mod
    action = request.get("action")
    target = request.get("target") or ""
    count = int(request.get("count", -1))
    name = str(request.get("errno") or "EBUSY").upper()
    err = getattr(errno_mod, name, None) if not name.isdigit() else int(name)
    if err is None:
        raise ValueError(f"unknown errno {name}")
    mm = kernel.mm
    if action == "offline-busy":
        if target:
            if not target.startswith("memory") or not target[6:].isdigit():
                raise ValueError(f"{target}: expected memoryN")
            key = int(target[6:])
            if key not in mm.blocks:
                raise ValueError(f"{target}: no such memory block")
        else:
            key = None
        mm.offline_faults[key] = [err, count]
    elif action == "probe-fail":
        if not target:
            raise ValueError("probe-fail needs a driver name")
        known = {d for bus in kernel.buses.values() for d in bus.drivers}
        if target not in known:
            raise ValueError(f"{target}: no such driver (known: {', '.join(sorted(known))})")
        kernel.probe_faults[target] = [err, count]
    elif action == "clear":
        mm.offline_faults.clear()
        kernel.probe_faults.clear()
    elif action != "list":
        raise ValueError(f"unknown fault action {action!r}")
    names = {v: k for k, v in vars(errno_mod).items() if k.startswith("E") and isinstance(v, int)}
    faults = [{"kind": "offline-busy", "target": f"memory{k}" if k is not None else "all",
               "errno": names.get(e, e), "count": c} for k, (e, c) in mm.offline_faults.items()]
    faults += [{"kind": "probe-fail", "target": d, "errno": names.get(e, e), "count": c}
               for d, (e, c) in kernel.probe_faults.items()]
    return {"ok": True, "faults": faults}


# commands that change the model (their invalidations are sent before the reply)
COMMANDS: dict = {"fault": fault}
