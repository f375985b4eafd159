"""Fixtures for the cxlfs test suite (helpers are in helpers.py and re-exported here).

* ``kernel`` / ``k``: the default cxl_test topology booted in process (no FUSE);
  ``k`` is a ``KernelView`` (cat/echo/ls/readlink by path, symlinks followed);
* ``mounted``: one ``cxlfs mount`` per test module (tests must leave it as found);
  ``fresh_mount``: one per test, for destructive tests.  Both skip with a reason when
  not root, /dev/fuse or fusermount3 is missing;
* ``run_in(mnt, *argv)``: ``cxlfs exec MNT -- argv`` -> CompletedProcess (text);
* ``parse_cxl_json`` / ``collect`` / ``cxl_json``: ``cxl list`` output as Python objects.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import (KernelView, by_name, collect, cxl, cxl_json, fuse_skip_reason,  # noqa: E402,F401
                     mount, parse_cxl_json, raises_errno, run_in, sh, umount, walk)


@pytest.fixture
def kernel():
    """A freshly booted default (cxl_test) topology, in process."""
    from cxlfs.topology.build import build
    from cxlfs.topology.spec import load
    return build(load())


@pytest.fixture
def k(kernel) -> KernelView:
    return KernelView(kernel)


@pytest.fixture(scope="module")
def mounted():
    """A cxlfs mount of the default topology shared by one test module."""
    mnt = mount()
    try:
        yield mnt
    finally:
        umount(mnt)


@pytest.fixture
def fresh_mount():
    """A cxlfs mount of the default topology for one (destructive) test."""
    mnt = mount()
    try:
        yield mnt
    finally:
        umount(mnt)


def pytest_collection_modifyitems(config, items):
    """Client tests also need the cxl binary; FUSE tests need root, /dev/fuse, fusermount3."""
    reason = fuse_skip_reason()
    no_cxl = shutil.which("cxl") is None
    for item in items:
        if reason and ("fuse" in item.keywords or "root" in item.keywords):
            item.add_marker(pytest.mark.skip(reason=reason))
        elif no_cxl and "clients" in item.keywords:
            item.add_marker(pytest.mark.skip(reason="the cxl tool is not installed (apt-get install ndctl)"))
