"""Kernel uevent injection: make the daemon's events genuine kernel uevents in a netns.

Since Linux 4.17 a message sent *to* the kernel on a NETLINK_KOBJECT_UEVENT socket is
re-broadcast by the kernel to every listener of that network namespace, with port id 0
and a kernel SEQNUM -- exactly what systemd-udevd, `udevadm monitor --kernel` and pyudev
accept.  The sender needs CAP_SYS_ADMIN over the netns' user namespace.
"""
from __future__ import annotations

import json
import socket
import struct
import threading

NETLINK_KOBJECT_UEVENT = 15
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLMSG_HDR = struct.Struct("=IHHII")


def payload(event: dict) -> bytes:
    """"action@devpath\\0KEY=VALUE\\0..." from the daemon's JSON (SEQNUM is the kernel's)."""
    props = event["properties"]
    head = f"{event['action']}@{event['devpath']}\0"
    body = "".join(f"{k}={v}\0" for k, v in props.items() if k != "SEQNUM")
    return (head + body).encode()


class Injector:
    """Sends events to the kernel of the current network namespace."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_KOBJECT_UEVENT)
        self.sock.bind((0, 0))
        self.seq = 0

    def inject(self, event: dict) -> int:
        data = payload(event)
        self.seq += 1
        msg = NLMSG_HDR.pack(NLMSG_HDR.size + len(data), 0x10, NLM_F_REQUEST | NLM_F_ACK, self.seq, 0) + data
        self.sock.sendto(msg, (0, 0))
        ack = self.sock.recv(4096)
        return -struct.unpack_from("=i", ack, NLMSG_HDR.size)[0]


def follow(control_path: str, on_event, *, ack: str | None = None,
           ready: threading.Event | None = None) -> None:
    """Subscribe to a daemon's uevents and hand each to ``on_event`` (blocking, until EOF).

    With ``ack`` ("injected" or "processed") every event is acknowledged once ``on_event``
    returned for it, and the daemon holds the write that caused it until then.
    """
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(control_path)
    s.sendall(json.dumps({"cmd": "monitor", "ack": ack}).encode() + b"\n")
    f = s.makefile("rb")
    f.readline()
    if ready is not None:
        ready.set()
    for line in f:
        event = json.loads(line)
        on_event(event)
        if ack:
            s.sendall(json.dumps({"ack": event["seqnum"]}).encode() + b"\n")
