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


# subsystems register further commands here (fault injection lives with what it breaks)
COMMANDS: dict = {}
