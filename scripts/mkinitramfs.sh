#!/usr/bin/env bash
# mkinitramfs.sh ARCH OUTDIR [EXTRA_FILE:DEST ...]
# Builds ring3's default guest for ARCH (amd64: Debian's cloud kernel from
# /boot; i386: the 686 kernel unpacked by setup.sh) as OUTDIR/vmlinuz-ARCH and
# OUTDIR/initrd-ARCH.img: busybox-static, guest/linux/init, ring3-exit, and
# the virtio modules with their dependencies (Debian builds them as modules).
set -euo pipefail
cd "$(dirname "$0")/.."
arch=$1 out=$2
shift 2

case $arch in
amd64)
	kernel=$(ls /boot/vmlinuz-*-cloud-amd64 | sort -V | tail -1)
	ver=${kernel#/boot/vmlinuz-}
	moddir=/lib/modules/$ver
	busybox=/bin/busybox
	;;
i386)
	root=build/debs/i386
	kernel=$(ls $root/boot/vmlinuz-* | sort -V | tail -1)
	ver=${kernel#$root/boot/vmlinuz-}
	moddir=$root/lib/modules/$ver
	busybox=$root/bin/busybox
	# The 686 kernel builds ext4 as a module (the cloud kernel has it built
	# in), and ext4's checksums need crc32c, which nothing else pulls in.
	RING3_EXTRA_MODULES="ext4 crc32c_generic ${RING3_EXTRA_MODULES:-}"
	;;
*)
	echo "mkinitramfs: unknown architecture $arch" >&2
	exit 2
	;;
esac
exit_tool=build/guest/ring3-exit-$arch
for f in "$kernel" "$busybox" "$exit_tool" "$moddir/modules.dep"; do
	[ -e "$f" ] || { echo "mkinitramfs: missing $f (run scripts/setup.sh and make)" >&2; exit 1; }
done

MODULES="virtio_pci virtio_mmio virtio_blk virtio_net virtio_console virtio-rng ${RING3_EXTRA_MODULES:-}"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,root,mnt,lib/modules/$ver}
cp "$busybox" "$tmp/bin/busybox"
for app in $("$tmp/bin/busybox" --list 2>/dev/null || busybox --list); do
	[ "$app" = busybox ] || ln -sf busybox "$tmp/bin/$app"
done
cp guest/linux/init "$tmp/init"
cp "$exit_tool" "$tmp/bin/ring3-exit"

# Modules and everything they depend on, by modules.dep. kmod treats '-' and
# '_' in a module name as the same character, and Debian's files use both
# (virtio-rng.ko next to virtio_blk.ko), so a name matches either spelling.
# modules.dep's line for a module, or nothing: grep finding no line is not an
# error here (under pipefail it would be, and used to drop virtio-rng).
dep_line() {
	local re=${1//[-_]/[-_]}
	{ grep -E "(^|/)${re}\.ko(\.xz|\.zst)?:" "$moddir/modules.dep" || true; } | head -1
}
declare -A seen=()
add_module() {
	local line path dep
	line=$(dep_line "$1")
	[ -n "$line" ] || return 0
	path=${line%%:*}
	[ -z "${seen[$path]:-}" ] || return 0
	seen[$path]=1
	mkdir -p "$tmp/lib/modules/$ver/$(dirname "$path")"
	cp "$moddir/$path" "$tmp/lib/modules/$ver/$path"
	for dep in ${line#*:}; do
		dep=$(basename "$dep"); dep=${dep%%.ko*}
		add_module "$dep"
	done
}
loaded=()
for m in $MODULES; do
	if [ -n "$(dep_line "$m")" ]; then
		add_module "$m"
		loaded+=("$m")
	else
		echo "mkinitramfs: note: $ver has no module $m" >&2
	fi
done
cp "$moddir/modules.dep" "$moddir/modules.order" "$tmp/lib/modules/$ver/" 2>/dev/null || true
printf '%s\n' "${loaded[@]}" > "$tmp/etc/ring3-modules"
echo "root:x:0:0:root:/root:/bin/sh" > "$tmp/etc/passwd"
echo "root:x:0:" > "$tmp/etc/group"

for extra in "$@"; do
	src=${extra%%:*} dst=${extra#*:}
	mkdir -p "$tmp/$(dirname "$dst")"
	cp -a "$src" "$tmp/$dst"
done

mkdir -p "$out"
(cd "$tmp" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0) |
	gzip -9 > "$out/initrd-$arch.img.tmp"
mv "$out/initrd-$arch.img.tmp" "$out/initrd-$arch.img"
cp "$kernel" "$out/vmlinuz-$arch"
echo "  GUEST   $out/vmlinuz-$arch $out/initrd-$arch.img ($ver, ${#loaded[@]} modules)"
