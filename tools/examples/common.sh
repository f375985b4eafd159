# Shared helpers for the ABI example flows (sourced).  Runs against /sys, i.e. inside
# `cxlfs exec MOUNT -- ...`.  Every step is echoed; a failing write stops the script.
set -eu
TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CXL=/sys/bus/cxl/devices
MEM=/sys/devices/system/memory

say() { printf '+ %s\n' "$*"; }
# write VALUE to PATH the way a script would, echoing it
put() { say "echo $1 > $2"; printf '%s\n' "$1" > "$2"; }
# put, expecting the kernel to refuse with ERRNO_TEXT (e.g. "No such device")
refuse() {
    local want=$1 value=$2 path=$3 err
    say "echo $value > $path    # expect: $want"
    if err=$( { printf '%s\n' "$value" > "$path"; } 2>&1 ); then
        echo "FAIL: the write was accepted" >&2; exit 1
    fi
    case "$err" in *"$want"*) echo "  refused: ${err##*: }" ;; *) echo "FAIL: $err" >&2; exit 1 ;; esac
}

# the memory blocks of a region: phys_index in [resource, resource + size)
region_blocks() {
    local region=$1 bs start size first count i
    bs=$(( 0x$(cat $MEM/block_size_bytes) ))
    start=$(( $(cat $CXL/$region/resource) )); size=$(( $(cat $CXL/$region/size) ))
    first=$(( (start + bs - 1) / bs )); count=$(( (start + size) / bs - first ))
    for ((i = first; i < first + count; i++)); do [ -d $MEM/memory$i ] && echo memory$i; done
}

# expect every block of the region online in ZONE and its node's MemTotal above zero
expect_online() {
    local region=$1 zone=$2 n=0 b node
    for b in $(region_blocks "$region"); do
        [ "$(cat $MEM/$b/state)" = online ] || { echo "FAIL: $b is $(cat $MEM/$b/state)" >&2; exit 1; }
        [ "$(cat $MEM/$b/valid_zones)" = "$zone" ] || { echo "FAIL: $b in $(cat $MEM/$b/valid_zones), want $zone" >&2; exit 1; }
        node=$(basename "$(ls -d $MEM/$b/node* | head -1)")
        n=$((n + 1))
    done
    [ $n -gt 0 ] || { echo "FAIL: $region has no memory blocks" >&2; exit 1; }
    say "$n blocks of $region online in $zone on $node"
    grep MemTotal /sys/devices/system/node/$node/meminfo
    [ "$(awk '/MemTotal/ {print $4}' /sys/devices/system/node/$node/meminfo)" -gt 0 ]
}

expect_no_blocks() {
    [ -z "$(region_blocks "$1")" ] || { echo "FAIL: $1 still has memory blocks" >&2; exit 1; }
    say "no memory blocks left for $1"
}

# a committed RAM region over the given memdevs, bound to DRIVER (or left unbound: none)
make_region() {
    local bind=$1; shift
    say "$TOOLS/cxl-ram-region -b $bind $*" >&2
    "$TOOLS/cxl-ram-region" -b "$bind" "$@"
}
