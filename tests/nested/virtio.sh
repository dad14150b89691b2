#!/usr/bin/env bash
# virtio devices with Debian's kernel under the kvm engine, in the nested test
# bed (docs/kvm.md, scripts/nested-initramfs.sh): tests/nested/virtio.inc runs
# in the outer VM with mke2fs and debugfs beside ring3; its TAP comes back on
# the outer serial console.
set -uo pipefail
cd "$(dirname "$0")/../.."

kernel=$(ls /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -1)
why=""
[ -x "${RING3_BIN:-./ring3}" ] || why="ring3 is not built"
command -v qemu-system-x86_64 >/dev/null || why="qemu-system-x86_64 is not installed"
[ -n "$kernel" ] || why="no /boot/vmlinuz-*-cloud-amd64 (run scripts/setup.sh)"
[ -e build/guest-linux/initrd-amd64.img ] || why="the default guest is not built (make guest-linux)"
for t in /sbin/mke2fs /sbin/debugfs; do [ -x $t ] || why="$t is missing (e2fsprogs)"; done
if [ -n "$why" ]; then
	echo "1..0 # SKIP $why"
	exit 0
fi

tmp=$(mktemp -d)
qpid="" # scripts/nested-run.sh, which kills its QEMU when it is ended
cleanup() {
	[ -n "$qpid" ] && kill "$qpid" 2>/dev/null && wait "$qpid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# mke2fs and debugfs with the libraries they load, at the same paths
extra=(/sbin/mke2fs:/opt/e2fs/mke2fs /sbin/debugfs:/opt/e2fs/debugfs /etc/mke2fs.conf:/etc/mke2fs.conf)
for lib in $(ldd /sbin/mke2fs /sbin/debugfs | grep -oE '/[^ ]+\.so[^ ]*' | sort -u); do
	extra+=("$lib:$lib")
done
# the default guest again, with the hostile driver in it (guest/tools/virtio-hostile.c)
if [ -e build/guest/virtio-hostile-amd64 ] &&
   scripts/mkinitramfs.sh amd64 "$tmp/hostile" build/guest/virtio-hostile-amd64:/bin/virtio-hostile \
	>"$tmp/hostile.log" 2>&1; then
	extra+=("$tmp/hostile/initrd-amd64.img:/guest-hostile/initrd-amd64.img"
		"$tmp/hostile/vmlinuz-amd64:/guest-hostile/vmlinuz-amd64")
fi
start=$(date +%s)
scripts/nested-run.sh tests/nested/virtio.inc "${RING3_NESTED_TIMEOUT:-800}" "${extra[@]}" \
	>"$tmp/console.txt" 2>&1 &
qpid=$!
wait "$qpid"
qrc=$?
qpid=""
mkdir -p build/test-logs
cp "$tmp/console.txt" build/test-logs/nested-virtio-console.log
sed -n 's/^@@TAP //p' "$tmp/console.txt" | grep -v '^1\.\.'
# the guest's plan, or (a payload cut short) the number of its last check
n=$(sed -n 's/^@@TAP 1\.\.\([0-9]*\).*/\1/p' "$tmp/console.txt" | tail -1)
[ -n "$n" ] || n=$(sed -nE 's/^@@TAP (not )?ok ([0-9]+).*/\2/p' "$tmp/console.txt" | tail -1)
grep '^1\.\.0' <(sed -n 's/^@@TAP //p' "$tmp/console.txt") && exit 0
. tests/nested/bed.inc
n=${n:-0}
bed_checks "$tmp/console.txt" "$qrc" "$(($(date +%s) - start))"
echo "1..$n"
