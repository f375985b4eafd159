"""The kernfs-like tree: inode ids, relative symlinks, attribute I/O rules (kernel-abi.md §0.1, §1)."""
from __future__ import annotations

import errno
import posixpath

import pytest

from cxlfs.core.kernfs import KAttr, KDir, KLink
from helpers import raises_errno, walk



def test_root_is_fuse_root_id(kernel):
    assert kernel.root.id == 1


def test_ids_unique_in_whole_tree(kernel):
    ids = [n.id for n in walk(kernel.root)]
    assert len(ids) == len(set(ids))
    assert all(i > 0 for i in ids)


def test_ids_stable_across_lookups(k):
    paths = ["/bus/cxl/devices", "/bus/cxl/devices/mem0", "/bus/cxl/flush",
             "/devices/platform/cxl_acpi.0/root0/decoder0.0/size"]
    first = [k.node(p).id for p in paths]
    k.cat("/devices/platform/cxl_acpi.0/root0/decoder0.0/size")
    k.ls("/devices/platform/cxl_acpi.0/root0")
    assert [k.node(p).id for p in paths] == first


def test_ids_never_reused_after_device_goes_and_comes_back(k, kernel):
    ep_name = k.port_by_uport("mem1")
    ep_dir = k.resolve(f"/bus/cxl/devices/{ep_name}")
    old_nodes = list(walk(ep_dir))
    old_ids = {n.id for n in old_nodes}
    max_before = max(n.id for n in walk(kernel.root))
    k.echo("/bus/cxl/drivers/cxl_mem/unbind", "mem1")
    assert not k.exists(f"/bus/cxl/devices/{ep_name}")
    assert all(not n.alive for n in old_nodes)
    k.echo("/bus/cxl/drivers/cxl_mem/bind", "mem1")
    new_ep = k.port_by_uport("mem1")
    assert new_ep is not None
    new_ids = {n.id for n in walk(k.resolve(f"/bus/cxl/devices/{new_ep}"))}
    assert not new_ids & old_ids
    assert min(new_ids) > max_before
    # and the whole tree still has unique ids
    ids = [n.id for n in walk(kernel.root)]
    assert len(ids) == len(set(ids))


def test_every_symlink_is_relative_and_resolves_to_its_target(kernel):
    links = [n for n in walk(kernel.root) if isinstance(n, KLink)]
    assert len(links) > 100
    for link in links:
        text = link.text()
        assert not text.startswith("/"), f"{link.path()} -> {text} is absolute"
        resolved = posixpath.normpath(posixpath.join(link.parent.path(), text))
        assert resolved == link.target.path(), f"{link.path()} -> {text}"


def kernfs_target_path(link) -> str:
    """fs/kernfs/symlink.c kernfs_get_target_path(): climb from the link's directory until
    reaching an ancestor-or-self of the *target's parent*, then name the target from there
    (so a link to an ancestor or to the directory itself still ends in the target's name)."""
    base, ups = link.parent, 0
    while base.parent is not None and not _is_ancestor_or_self(base, link.target.parent):
        base, ups = base.parent, ups + 1
    names, n = [], link.target
    while n is not None and n is not base:
        names.append(n.name)
        n = n.parent
    return "../" * ups + "/".join(reversed(names))


def _is_ancestor_or_self(a, n):
    while n is not None:
        if n is a:
            return True
        n = n.parent
    return False


def test_link_text_is_kernfs_spelling_for_non_ancestor_targets(kernel):
    links = [n for n in walk(kernel.root) if isinstance(n, KLink)
             and not _is_ancestor_or_self(n.target, n.parent)]
    assert len(links) > 100
    for link in links:
        assert link.text() == kernfs_target_path(link), link.path()


def test_link_text_is_kernfs_spelling_for_ancestor_targets(k, kernel):
    assert k.readlink("/devices/platform/cxl_acpi.0/root0/uport") == "../../cxl_acpi.0"
    assert k.readlink("/devices/platform/cxl_host_bridge.0/physical_node") == "../cxl_host_bridge.0"
    for link in (n for n in walk(kernel.root) if isinstance(n, KLink)):
        assert link.text() == kernfs_target_path(link), link.path()


def test_kernel_style_link_spellings(k):
    assert k.readlink("/bus/cxl/devices/mem0").startswith("../../../devices/platform/")
    assert k.readlink("/bus/cxl/devices/mem0").endswith("/cxl_mem.0/mem0")
    root0 = k.path("/bus/cxl/devices/root0")
    assert root0 == "/devices/platform/cxl_acpi.0/root0"
    assert k.readlink(f"{root0}/subsystem") == "../../../../bus/cxl"
    assert k.readlink("/bus/cxl/devices/port1/driver").endswith("../bus/cxl/drivers/cxl_port")
    assert k.readlink("/bus/cxl/drivers/cxl_mem/mem0").startswith("../../../../devices/platform/")
    assert k.readlink("/bus/cxl/drivers/cxl_mem/module") == "../../../../module/cxl_mem"


def test_dev_char_links_to_memdevs(k, kernel):
    major = kernel.majors.cxl
    assert k.val("/bus/cxl/devices/mem3/dev") == f"{major}:3"
    assert k.path(f"/dev/char/{major}:3") == k.path("/bus/cxl/devices/mem3")


# ---- attribute I/O rules (§0.1) ------------------------------------------------------------------

def test_read_of_write_only_attribute_is_eacces(k):
    with raises_errno(errno.EACCES):
        k.cat("/bus/cxl/flush")
    with raises_errno(errno.EACCES):
        k.cat("/bus/cxl/drivers/cxl_mem/bind")


def test_write_of_read_only_attribute_is_eacces(k):
    with raises_errno(errno.EACCES):
        k.echo("/bus/cxl/devices/mem0/serial", "5")
    with raises_errno(errno.EACCES):
        k.echo("/bus/cxl/devices/decoder0.0/size", "0")


def test_write_returns_full_count_including_nul(k):
    assert k.echo("/bus/cxl/flush", b"1\n\0") == 3
    assert k.echo("/bus/cxl/flush", b"1\0") == 2
    assert k.echo("/bus/cxl/flush", b"1") == 1


def test_zero_length_write_returns_zero_without_store(k):
    # an empty write would be EINVAL for flush if the store ran
    assert k.echo("/bus/cxl/flush", b"") == 0


def test_write_truncated_to_a_page(k):
    # > 4096 bytes: truncated to 4096 and passed on; flush rejects the junk with EINVAL,
    # and a no-op store (drivers_autoprobe) returns the truncated count
    assert k.errno_of("/bus/cxl/flush", b"1" * 5000) == errno.EINVAL
    assert k.echo("/bus/cxl/drivers_autoprobe", b"1" * 5000) == 4096


def test_flush_accepts_only_1(k):
    assert k.echo("/bus/cxl/flush", "1\n") == 2
    for bad in ("0", "2", "11", "1\n\n", " 1", "\n"):
        assert k.errno_of("/bus/cxl/flush", bad) == errno.EINVAL, bad


def test_stale_attribute_node_gives_enodev(k, kernel):
    ep = k.port_by_uport("mem1")
    node = k.node(f"/bus/cxl/devices/{ep}/decoders_committed")
    assert isinstance(node, KAttr)
    assert kernel.read(node) == b"0\n"
    k.echo("/bus/cxl/drivers/cxl_mem/unbind", "mem1")
    with raises_errno(errno.ENODEV):
        kernel.read(node)
    with raises_errno(errno.ENODEV):
        kernel.write(node, b"1")


def test_reads_are_at_most_a_page_and_end_in_newline(kernel):
    for node in walk(kernel.root):
        if isinstance(node, KAttr) and node.mode & 0o444 and node.attr.show is not None:
            try:
                data = kernel.read(node)
            except Exception as e:  # noqa: BLE001 - reported with the path
                code = getattr(e, "errno", None)
                # documented read errors only (e.g. power/autosuspend_delay_ms is EIO)
                assert code in (errno.EIO, errno.ENXIO, errno.EOPNOTSUPP), f"{node.path()}: {e!r}"
                continue
            assert len(data) <= 4096, node.path()
            if node.parent.name != "power" and data:
                assert data.endswith(b"\n"), f"{node.path()}: {data!r}"


def test_directories_list_children_in_creation_order(k):
    names = k.ls("/bus/cxl/devices/root0")
    assert names.index("dport0") < names.index("decoder0.0") < names.index("port1")


def test_lazy_directories_are_reported_in_readdir(k, kernel):
    # every listed name can be looked up, every directory lists what get() finds
    for node in walk(kernel.root):
        if isinstance(node, KDir):
            for child in node.listing():
                assert node.get(child.name) is child


@pytest.mark.parametrize("path", ["/bus/cxl/flush", "/bus/cxl/drivers/cxl_mem/bind",
                                  "/bus/cxl/drivers/cxl_mem/unbind", "/bus/cxl/drivers_probe",
                                  "/bus/cxl/drivers/cxl_port/uevent", "/bus/cxl/uevent",
                                  "/bus/cxl/devices/decoder0.0/delete_region"])
def test_write_only_files_have_mode_0200(k, path):
    assert k.mode(path) == 0o200
