#!/usr/bin/env bash
# "[RFC PATCH v4 24/27] cxl/core: Add cxl_sysram region type" (Feb 2026): no DAX layer.
#   cxlfs mount --abi sysram-rfc-v4 M; cxlfs exec M -- tools/examples/sysram-rfc-v4.sh
source "$(dirname "$0")/common.sh"
[ $# -gt 0 ] || set -- -d decoder0.1 mem2 mem1
region=$(make_region cxl_region "$@")
refuse "Invalid argument" bogus "$CXL/sysram_$region/hotplug"
put online_movable "$CXL/sysram_$region/hotplug"
expect_online "$region" Movable
refuse "Device or resource busy" online "$CXL/sysram_$region/hotplug"
put offline "$CXL/sysram_$region/hotplug"
expect_no_blocks "$region"
put online "$CXL/sysram_$region/hotplug"
expect_online "$region" Normal
