"""The test infrastructure itself: skip reasons and the `cxl list` JSON helpers."""
from __future__ import annotations

import os
import shutil

import helpers
from helpers import collect, fuse_skip_reason, parse_cxl_json


def test_skip_reason_not_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "root" in fuse_skip_reason()


def test_skip_reason_no_dev_fuse(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    real = os.path.exists
    monkeypatch.setattr(helpers.os.path, "exists", lambda p: False if p == "/dev/fuse" else real(p))
    assert "/dev/fuse" in fuse_skip_reason()


def test_skip_reason_no_fusermount3(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(helpers.os.path, "exists", lambda p: True)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert "fusermount3" in fuse_skip_reason()


def test_parse_cxl_json_shapes():
    assert parse_cxl_json("") == []
    assert parse_cxl_json("[\n]\n") == []
    assert parse_cxl_json('{"memdev":"mem3"}') == [{"memdev": "mem3"}]
    assert parse_cxl_json('[{"bus":"root0"}]') == [{"bus": "root0"}]


def test_collect_finds_nested_objects():
    data = [{"ports": [{"port": "port1", "ports:port1": [
        {"port": "port4", "endpoints:port4": [
            {"endpoint": "endpoint5", "host": "mem0",
             "memdev": {"memdev": "mem0", "serial": 1}}]}]}]},
            {"anon memdevs": [{"memdev": "mem1", "state": "disabled"}]}]
    assert [p["port"] for p in collect(data, "port")] == ["port1", "port4"]
    assert [e["endpoint"] for e in collect(data, "endpoint")] == ["endpoint5"]
    assert sorted(m["memdev"] for m in collect(data, "memdev")) == ["mem0", "mem1"]
    # an endpoint's nested "memdev" object is not itself counted as a memdev name
    assert all(isinstance(m["memdev"], str) for m in collect(data, "memdev"))
