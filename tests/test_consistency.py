"""Random writes against the model, through the FUSE adapter, with a simulated page cache.

Two properties a user relies on without knowing it:
* exact invalidation: after every write, every page the kernel may still cache either
  was invalidated or still shows what a fresh read would show;
* model invariants: no internal error (the daemon never dies on input), `driver` links
  exactly where a driver is bound, node masks and committed decoders consistent.
"""
from __future__ import annotations

import errno
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxlfs.core.kernfs import KAttr, KDir, KLink
from cxlfs.fuse import protocol as P
from cxlfs.fuse.adapter import SysfsFS
from cxlfs.fuse.session import FuseError
from cxlfs.topology.build import build
from cxlfs.topology.spec import load

VALUES = ["0", "1", "ram", "pmem", "offline", "online", "online_kernel", "online_movable", "none",
          "0x10000000", "0x40000000", "0x80000000", "256", "4096", "2", "4", "", "\n", "garbage",
          "region1", "region6", "mem1", "mem4", "region0", "dax0.0", "dax_region0", "add", "change",
          "decoder5.1", "decoder7.0", "decoder0.1", "memory7682", "online_movable\n"]


class FakeSession:
    """Collects the notifications the adapter sends instead of writing /dev/fuse."""

    def __init__(self):
        self.sent: list[bytes] = []
        self.nursery = None

    def notify_later(self, messages):
        self.sent += messages

    async def notify(self, messages):
        self.sent += messages


def request(opcode: int, nodeid: int, body: bytes) -> P.Request:
    return P.Request(opcode, 1, nodeid, 0, 0, 0, memoryview(body))


class Harness:
    def __init__(self):
        self.kernel = build(load())
        self.fs = SysfsFS(self.kernel)
        self.fs.session = self.session = FakeSession()
        self.fs.collect_invalidations()
        self.cache: dict[int, bytes] = {}          # what the kernel's page cache holds
        self._attrs: list[KAttr] | None = None

    def attrs(self) -> list[KAttr]:
        """Files of every cxl and dax device, their drivers, the memory blocks of CXL memory
        and the node and memory roots (boot DRAM blocks left out: many, and all alike)."""
        if self._attrs is not None:
            return self._attrs
        k = self.kernel
        dirs = [bus.kdir for bus in k.buses.values()]
        dirs += [d.kdir for name in ("cxl", "dax") for d in k.buses[name].devices.values()]
        dirs += [b.kdir for b in k.mm.blocks.values() if not b.boot]
        dirs += [k.mm.kdir, k.mm.nodes.kdir] + [n.kdir for n in k.mm.nodes.devices.values()]
        out, seen = [], set()
        while dirs:
            node = dirs.pop()
            if node is None or not node.alive or node.id in seen:
                continue
            seen.add(node.id)
            for child in node.children.values():
                if isinstance(child, KDir) and child.owner is None and child.name != "power":
                    dirs.append(child)          # attribute groups, bus devices/drivers dirs
                elif isinstance(child, KDir) and child.name == "drivers":
                    dirs.append(child)
                elif isinstance(child, KAttr):
                    out.append(child)
        out.sort(key=lambda n: n.id)
        self._attrs = out
        return out

    def read(self, node: KAttr) -> None:
        if node.id in self.cache:
            return
        self.fs.nodes[node.id] = node
        self.fs.nlookup[node.id] = 1
        try:
            data = self.fs.handle(request(P.READ, node.id, P.READ_IN.pack(0, 0, 4096, 0, 0, 0, 0)))
        except FuseError:
            return
        self.cache[node.id] = data

    def write(self, node: KAttr, value: str) -> None:
        self.fs.nodes[node.id] = node
        self.fs.nlookup.setdefault(node.id, 1)
        data = value.encode() + b"\0"
        body = P.WRITE_IN.pack(0, 0, len(data), 0, 0, 0, 0) + data
        try:
            result = self.fs.handle(request(P.WRITE, node.id, body))
        except FuseError:
            result = None
        if result is not None and not isinstance(result, bytes):
            try:                        # drive the coroutine: FakeSession.notify never suspends
                result.send(None)
            except StopIteration:
                pass
            except FuseError:
                pass
        for message in self.session.sent:
            _, code, _ = P.OUT_HEADER.unpack_from(message)
            if code == P.NOTIFY_INVAL_INODE:
                (ino,) = struct.unpack_from("=Q", message, P.OUT_HEADER.size)
                self.cache.pop(ino, None)
            elif code == P.NOTIFY_DELETE:
                (_, child) = struct.unpack_from("=QQ", message, P.OUT_HEADER.size)
                self.cache.pop(child, None)
        self.session.sent.clear()
        self._attrs = None

    def check(self) -> None:
        k = self.kernel
        bugs = [line for line in k.log.grep("BUG")]
        assert not bugs, "\n".join(bugs)
        for nid, text in self.cache.items():
            node = self.fs.nodes.get(nid)
            if node is None or not node.alive:
                continue
            fresh = k.read(node)
            assert fresh == text, f"stale page {node.path()}: cached {text!r}, now {fresh!r}"
        for bus in k.buses.values():
            for dev in bus.devices.values():
                assert dev.kdir is not None and dev.kdir.alive, dev
                link = dev.kdir.get("driver")
                assert (link is not None) == (dev.driver is not None), f"{dev}: driver link"
                if link is not None:
                    assert isinstance(link, KLink) and link.target is dev.driver.kdir
        mm = k.mm
        with_memory = {b.nid for b in mm.blocks.values() if b.is_online}
        assert mm.nodes.has_memory == with_memory
        for port in k.cxl.all_ports():
            committed = [d.index for d in port.decoders if d.committed]
            assert all(i <= port.commit_end for i in committed), port


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 10 ** 6), st.sampled_from(VALUES)),
                min_size=5, max_size=60))
def test_random_writes_keep_cache_and_model_consistent(ops):
    h = Harness()
    for is_write, pick, value in ops:
        attrs = h.attrs()
        node = attrs[pick % len(attrs)]
        if is_write and node.attr.store_fn is not None:
            h.write(node, value)
        else:
            h.read(node)
        h.check()


def test_region_lifecycle_through_the_cache():
    """A full create/commit/bind/online/teardown with every readable file of the touched
    devices cached before each step: nothing stale at any point."""
    h = Harness()
    k = h.kernel
    steps = [("/bus/cxl/devices/decoder0.1/create_ram_region", "region1"),
             ("/bus/cxl/devices/region1/interleave_granularity", "4096"),
             ("/bus/cxl/devices/region1/interleave_ways", "2"),
             ("/bus/cxl/devices/region1/size", "0x80000000"),
             ("/bus/cxl/devices/decoder9.0/mode", "ram"),
             ("/bus/cxl/devices/decoder9.0/dpa_size", "0x40000000"),
             ("/bus/cxl/devices/decoder7.0/mode", "ram"),
             ("/bus/cxl/devices/decoder7.0/dpa_size", "0x40000000"),
             ("/bus/cxl/devices/region1/target0", "decoder9.0"),
             ("/bus/cxl/devices/region1/target1", "decoder7.0"),
             ("/bus/cxl/devices/region1/commit", "1"),
             ("/bus/cxl/drivers/cxl_region/bind", "region1"),
             ("/devices/system/memory/auto_online_blocks", "online_movable"),
             ("/bus/dax/drivers/kmem/unbind", "dax1.0"),
             ("/bus/dax/drivers/kmem/bind", "dax1.0")]
    first = 0xF050000000 // (128 << 20)            # region1 starts where decoder0.1 does
    steps += [(f"/devices/system/memory/memory{first + i}/state", "offline") for i in range(16)]
    steps += [("/bus/cxl/drivers/cxl_region/unbind", "region1"),
             ("/bus/cxl/devices/region1/commit", "0"),
             ("/bus/cxl/devices/region1/target1", ""),
             ("/bus/cxl/devices/decoder0.1/delete_region", "region1")]

    def resolve(path):
        node = k.root
        for part in path.strip("/").split("/"):
            node = node.get(part)
            while isinstance(node, KLink):
                node = node.target
        return node

    for path, value in steps:
        for node in h.attrs():
            if node.mode & 0o444 and node.attr.show is not None:
                h.read(node)
        node = resolve(path)
        before = k.log.seq
        h.write(node, value)
        errors = [line.text for line in k.log.since(before) if line.level <= 3]
        assert not errors, f"{path} <- {value}: {errors}"
        h.check()
    assert not k.root.walk("bus/cxl/devices/region1")


def test_internal_errors_become_eio_and_a_log_line(kernel):
    """The daemon never dies on input: a show() that raises is EIO plus a BUG line."""
    from cxlfs.core.errors import KernelError
    node = kernel.buses["cxl"].devices["mem0"].kdir.get("serial")
    original = node.attr.show
    node.attr.show = lambda dev: 1 / 0
    try:
        try:
            kernel.read(node)
        except KernelError as e:
            assert e.errno == errno.EIO
        else:
            raise AssertionError("no error")
    finally:
        node.attr.show = original
    assert any("BUG: internal error in show" in line and line.endswith("/mem0/serial")
               for line in kernel.log.grep("BUG"))
