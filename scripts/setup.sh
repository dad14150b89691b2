#!/usr/bin/env bash
# Sets up a Debian 12 machine for ring3, idempotently: the packages ring3 is
# built and tested with, and the guest material from Debian's i386 archive
# (linux-image-686, busybox-static), unpacked under build/debs/i386.
# Nothing comes from anywhere but Debian's packages.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(gcc make pkg-config gcc-multilib libc6-dev-i386 libzydis-dev libseccomp-dev libslirp-dev
      busybox-static cpio qemu-system-x86 e2fsprogs linux-image-cloud-amd64 kmod file)

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for p in "${PKGS[@]}"; do
	[[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == *"ok installed"* ]] || missing+=("$p")
done
if [[ " $(dpkg --print-foreign-architectures | tr "\n" " ") " != *" i386 "* ]]; then
	echo "setup: adding the i386 architecture (for the bt engine's default guest)"
	as_root dpkg --add-architecture i386
	need_update=1
fi
i386_ok() { local p; p=$(apt-cache policy linux-image-686:i386 2>/dev/null); [[ $p == *"Candidate: "[0-9]* ]]; }
if [ ${#missing[@]} -gt 0 ] || [ -n "${need_update:-}" ] || ! i386_ok; then
	echo "setup: apt-get update"
	# A mirror mid-sync can fail one index while the ones we need load: judge by
	# what is available afterwards, not by apt-get's status (HOST-FACTS.md).
	as_root apt-get update -qq || echo "setup: apt-get update reported errors; going on"
fi
if [ ${#missing[@]} -gt 0 ]; then
	echo "setup: installing ${missing[*]}"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null
fi

# The i386 guest: download (not install) and unpack.
debs=build/debs
root=$debs/i386
mkdir -p "$debs"
if [ ! -e "$root/.done" ]; then
	i386_ok || { echo "setup: linux-image-686:i386 is not available from apt" >&2; exit 1; }
	kpkg=$(apt-cache depends linux-image-686:i386 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	[ -n "$kpkg" ] || { echo "setup: cannot resolve linux-image-686:i386" >&2; exit 1; }
	echo "setup: downloading ${kpkg%:i386} and busybox-static for i386"
	(cd "$debs" && rm -f ./*.deb && apt-get download -qq "$kpkg" busybox-static:i386)
	rm -rf "$root"
	mkdir -p "$root"
	for d in "$debs"/*.deb; do
		dpkg-deb -x "$d" "$root"
	done
	rm -f "$debs"/*.deb
	# modules.dep is made at install time, which we skip: make it here.
	for m in "$root"/lib/modules/*; do
		depmod -b "$root" "$(basename "$m")"
	done
	touch "$root/.done"
fi
