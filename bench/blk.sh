#!/usr/bin/env bash
# bench/blk.sh: virtio-blk, ring3 against QEMU (bench/virtio.sh).
exec "$(dirname "$0")/virtio.sh" blk "$@"
