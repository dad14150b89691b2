#!/usr/bin/env bash
# bench/net.sh: virtio-net with user-mode networking, ring3 against QEMU (bench/virtio.sh).
exec "$(dirname "$0")/virtio.sh" net "$@"
