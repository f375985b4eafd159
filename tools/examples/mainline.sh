#!/usr/bin/env bash
# mainline: cxl_region -> dax_regionN -> daxN.0 on kmem; daxctl onlines the blocks.
#   cxlfs mount M; cxlfs exec M -- tools/examples/mainline.sh [memdev...]
source "$(dirname "$0")/common.sh"
[ $# -gt 0 ] || set -- -d decoder0.1 mem2 mem1
region=$(make_region cxl_region "$@")
id=${region#region}
say "daxctl online-memory dax$id.0"
daxctl online-memory "dax$id.0"
expect_online "$region" Movable
