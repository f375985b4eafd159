"""The /proc/iomem view: windows contain regions, regions the driver's reservation, that
the System RAM resource its driver added ("System RAM (kmem)", sysram's "System RAM (CXL)")."""
from __future__ import annotations

import subprocess

import pytest

from cxlfs.iomem import iomem_text
from cxlfs.topology.build import build
from cxlfs.topology.spec import load
from helpers import CXLFS


def lines_for(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


def test_kmem_region_nesting():
    text = iomem_text(build(load()))
    assert "f010000000-f04fffffff : CXL Window 0" in text.splitlines()
    assert "  f010000000-f02fffffff : region0" in text.splitlines()
    assert "    f010000000-f02fffffff : dax0.0" in text.splitlines()
    assert "      f010000000-f02fffffff : System RAM (kmem)" in text.splitlines()
    assert len(lines_for(text, "CXL Window")) == 6


def test_sysram_proposal_names_its_resource():
    k = build(load(), profile="sysram-rfc-v4", options={"sysram_online_type": "movable"})
    text = iomem_text(k)
    assert "    f010000000-f02fffffff : cxl_sysram0" in text.splitlines()
    assert "      f010000000-f02fffffff : System RAM (CXL)" in text.splitlines()
    assert not lines_for(text, "kmem")


@pytest.mark.fuse
@pytest.mark.root
def test_cli_prints_the_view(mounted):
    proc = subprocess.run([*CXLFS, "iomem", mounted], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    assert "CXL Window 0" in proc.stdout and "System RAM" in proc.stdout
