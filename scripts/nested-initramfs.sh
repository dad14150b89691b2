#!/usr/bin/env bash
# nested-initramfs.sh OUT.cpio.gz PAYLOAD [SRC:DEST ...]
# Builds the outer initramfs of the nested test bed (docs/kvm.md): busybox,
# the host kernel's kvm modules (irqbypass, kvm, kvm-amd, kvm-intel), ring3
# with the shared libraries it links, the default amd64 guest in /guest, and
# PAYLOAD as /payload.sh. Its /init loads the modules and runs the payload,
# whose output goes to the outer serial console, then powers the outer VM off.
# RING3_BIN picks another ring3 binary than ./ring3. NESTED_SHMEM_THP (advise,
# the default, or never) sets the outer kernel's transparent_hugepage/
# shmem_enabled: ring3's guest RAM is a memfd, which gets 2 MiB pages only with
# "advise" (ring3 asks for them); boots are twice as fast with them here.
# Anonymous THP (and with it khugepaged) is off in the outer VM.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1 payload=$2
shift 2

kernel=$(ls /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -1)
[ -n "$kernel" ] || { echo "nested-initramfs: no /boot/vmlinuz-*-cloud-amd64" >&2; exit 1; }
ver=${kernel#/boot/vmlinuz-}
moddir=/lib/modules/$ver/kernel
ring3=${RING3_BIN:-ring3}
for f in "$ring3" build/guest-linux/vmlinuz-amd64 build/guest-linux/initrd-amd64.img "$payload"; do
	[ -e "$f" ] || { echo "nested-initramfs: missing $f (run make and make guest-linux)" >&2; exit 1; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"/{bin,sbin,proc,sys,dev,tmp,guest,lib/kvm}
cp /bin/busybox "$tmp/bin/busybox"
for app in $(/bin/busybox --list); do
	[ "$app" = busybox ] || ln -sf busybox "$tmp/bin/$app"
done

# The modules, decompressed here so busybox insmod needs no xz or zstd.
for m in virt/lib/irqbypass arch/x86/kvm/kvm arch/x86/kvm/kvm-amd arch/x86/kvm/kvm-intel; do
	name=$(basename "$m")
	if [ -e "$moddir/$m.ko" ]; then
		cp "$moddir/$m.ko" "$tmp/lib/kvm/$name.ko"
	elif [ -e "$moddir/$m.ko.xz" ]; then
		xz -dc "$moddir/$m.ko.xz" > "$tmp/lib/kvm/$name.ko"
	elif [ -e "$moddir/$m.ko.zst" ]; then
		zstd -qdc "$moddir/$m.ko.zst" > "$tmp/lib/kvm/$name.ko"
	else
		echo "nested-initramfs: no $m module in $moddir" >&2
		exit 1
	fi
done

# ring3 and what the dynamic loader needs for it, at the same paths.
cp "$ring3" "$tmp/bin/ring3"
for lib in $(ldd "$ring3" | grep -oE '/[^ ]+'); do
	mkdir -p "$tmp/$(dirname "$lib")"
	cp -L "$lib" "$tmp/$lib"
done

# QEMU itself, for the benchmarks' side-by-side runs (NESTED_QEMU=1), with the
# firmware they boot: microvm's, qboot, and SeaBIOS (Debian keeps it apart).
if [ "${NESTED_QEMU:-0}" = 1 ]; then
	qemu=$(command -v qemu-system-x86_64)
	cp "$qemu" "$tmp/bin/qemu-system-x86_64"
	for lib in $(ldd "$qemu" | grep -oE '/[^ ]+'); do
		mkdir -p "$tmp/$(dirname "$lib")"
		cp -L "$lib" "$tmp/$lib"
	done
	mkdir -p "$tmp/usr/share/qemu"
	for f in bios-microvm.bin linuxboot_dma.bin kvmvapic.bin pvh.bin qboot.rom bios-256k.bin; do
		for d in /usr/share/qemu /usr/share/seabios; do
			[ -e "$d/$f" ] && cp -L "$d/$f" "$tmp/usr/share/qemu/$f" && break
		done
	done
fi

cp build/guest-linux/vmlinuz-amd64 build/guest-linux/initrd-amd64.img "$tmp/guest/"
cp "$payload" "$tmp/payload.sh"
echo "$ver" > "$tmp/guest/release"
for extra in "$@"; do
	src=${extra%%:*} dst=${extra#*:}
	mkdir -p "$tmp/$(dirname "$dst")"
	cp -L "$src" "$tmp/$dst"
done

cat > "$tmp/init" <<'EOF'
#!/bin/sh
export PATH=/bin:/sbin RING3_GUEST_DIR=/guest
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
insmod /lib/kvm/irqbypass.ko
insmod /lib/kvm/kvm.ko
grep -qw svm /proc/cpuinfo && insmod /lib/kvm/kvm-amd.ko
grep -qw vmx /proc/cpuinfo && insmod /lib/kvm/kvm-intel.ko
echo __SHMEM_THP__ > /sys/kernel/mm/transparent_hugepage/shmem_enabled
# No khugepaged: with Debian's THP "always" it collapses the small pages of
# ring3's memfd (MADV_HUGEPAGE) behind KVM's back, and on TCG's emulated SVM it
# has soft-locked a vCPU for good ("BUG: soft lockup ... [khugepaged]"), which
# took the whole outer VM down (docs/kvm.md). Faults in a MADV_HUGEPAGE shmem
# mapping still get 2 MiB pages with shmem_enabled=advise.
echo never > /sys/kernel/mm/transparent_hugepage/enabled
if [ -c /dev/kvm ]; then
	echo "@@NESTED kvm ready"
else
	echo "@@NESTED no /dev/kvm: $(grep -o -m1 -w -e svm -e vmx /proc/cpuinfo || echo no svm/vmx flag)"
fi
# Heartbeats for scripts/nested-run.sh's watchdog: one through the tty (what
# the payload's output takes: the 8250's interrupt-driven transmit path), one
# through printk (the console's polled path). When the first stops, the run
# is stuck; whether the second goes on tells a stalled tty from a wedged VM.
(while sleep 20; do echo "@@NESTED alive"; done) &
hb1=$!
(while sleep 20; do echo "<3>@@NESTED kernel alive" > /dev/kmsg; done) &
hb2=$!
sh /payload.sh
kill $hb1 $hb2
echo "@@NESTED done"
poweroff -f
EOF
thp=${NESTED_SHMEM_THP:-advise}
case $thp in advise | never) ;; *) echo "nested-initramfs: NESTED_SHMEM_THP is advise or never" >&2; exit 2 ;; esac
sed -i "s/__SHMEM_THP__/$thp/" "$tmp/init"
chmod +x "$tmp/init"

(cd "$tmp" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0) |
	gzip -1 > "$out.tmp"
mv "$out.tmp" "$out"
