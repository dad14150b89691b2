#!/usr/bin/env bash
# virtio-pci under the bt engine, with Debian's i386 kernel: the engine has no
# LAPIC, so the devices offer no MSI-X and interrupt through INTx on the 8259
# (routed by the DSDT's _PRT); their registers are MMIO BARs the engine
# emulates instruction by instruction. The ext4 round trip (mkfs on the host,
# the guest writes and syncs, the host reads it back with debugfs) and a fetch
# over --net user from a server on the host's loopback.
set -u
cd "$(dirname "$0")/../.."
DIAG_LINES=12
. tests/guest/i386-guest.inc
srv=
trap '[ -n "$srv" ] && kill "$srv" 2>/dev/null; rm -rf "$tmp"' EXIT
for t in mkfs.ext4 debugfs python3; do
	command -v $t >/dev/null || { echo "1..0 # SKIP $t is not installed"; exit 0; }
done

run() { run_bt "$@"; } # ring3 options... -- command...

# ext4 round trip
mkfs.ext4 -q -F "$tmp/d.img" 32M >/dev/null
want=$(seq 1 20000 | sha256sum | cut -d' ' -f1)
run --disk "$tmp/d.img" -- sh -c 'mount -t ext4 /dev/vda /mnt && seq 1 20000 >/mnt/file &&
	sync && umount /mnt && echo wrote; echo pic=$(grep -c "XT-PIC.*virtio0$" /proc/interrupts)
	echo msi=$(grep -c PCI-MSI /proc/interrupts)
	echo warn=$(dmesg | grep -cE "WARNING|derive routing|no GSI")'
got=$(debugfs -R 'cat /file' "$tmp/d.img" 2>/dev/null | sha256sum | cut -d' ' -f1)
result "$([ "$rc" = 0 ] && grep -qx wrote "$tmp/cmd" && [ "$got" = "$want" ]; echo $?)" \
	"ext4 on --disk: the guest writes a file and syncs, debugfs on the host reads the same bytes"
result "$(grep -qx pic=1 "$tmp/cmd" && grep -qx msi=0 "$tmp/cmd"; echo $?)" \
	"virtio-blk (virtio0) interrupts through the 8259 (XT-PIC in /proc/interrupts), no MSI"
result "$(grep -qx warn=0 "$tmp/cmd"; echo $?)" \
	"dmesg has no WARNING (MSI) and no complaint about PCI interrupt routing"

# the guest reads the file back after a fresh boot
run --disk "$tmp/d.img" -- sh -c 'mount -t ext4 -o ro /dev/vda /mnt && sha256sum /mnt/file'
result "$([ "$rc" = 0 ] && grep -q "^$want " "$tmp/cmd"; echo $?)" \
	"a second boot mounts the disk and reads the file back with the same sha256"

# entropy: virtio-rng (always present) behind /dev/hwrng; two reads of 64
# bytes differ, and --stats shows the bytes came from the device
run --stats -- sh -c 'cat /sys/class/misc/hw_random/rng_current
	a=$(dd if=/dev/hwrng bs=64 count=1 2>/dev/null | od -An -tx1 | tr -d " \n")
	b=$(dd if=/dev/hwrng bs=64 count=1 2>/dev/null | od -An -tx1 | tr -d " \n")
	echo "len=${#a}"; [ "$a" != "$b" ] && echo differ'
rngout=$(awk '$1 == "virtio-rng" { print $4 }' "$tmp/out")
result "$([ "$rc" = 0 ] && grep -q '^virtio_rng' "$tmp/cmd" && grep -qx len=128 "$tmp/cmd" &&
	grep -qx differ "$tmp/cmd" && [ "${rngout:-0}" -ge 128 ]; echo $?)" \
	"/dev/hwrng is virtio-rng: two 64-byte reads differ, --stats counts >= 128 bytes from the device"

# wait_port FILE: the port a server wrote to FILE (renamed into place once
# written), or nothing after 5 s
wait_port() {
	for _ in $(seq 50); do [ -s "$1" ] && break; sleep 0.1; done
	cat "$1" 2>/dev/null
}
# serve ADDR [PREFIX...]: an HTTP server for $tmp/www on ADDR (run under
# PREFIX, e.g. ip netns exec NS), its port picked by the kernel: sets srv, port
serve() {
	local addr=$1
	shift
	rm -f "$tmp/port"
	"$@" python3 - "$tmp/www" "$tmp/port" "$addr" <<'PY' 2>/dev/null &
import functools, http.server, os, sys
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
s = http.server.HTTPServer((sys.argv[3], 0), h)
open(sys.argv[2] + ".tmp", "w").write(str(s.server_address[1]))
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
s.serve_forever()
PY
	srv=$!
	port=$(wait_port "$tmp/port")
}

# virtio-net through --net user: a server on the host's loopback, port picked by the kernel
mkdir -p "$tmp/www"
seq 1 30000 >"$tmp/www/f.txt"
want=$(sha256sum <"$tmp/www/f.txt" | cut -d' ' -f1)
serve 127.0.0.1
netup='ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2'
run --net user -- sh -c "$netup && wget -q -O - http://10.0.2.2:$port/f.txt | sha256sum"
result "$([ -n "$port" ] && [ "$rc" = 0 ] && grep -q "^$want " "$tmp/cmd"; echo $?)" \
	"--net user: the guest fetches a file from a server on the host's 127.0.0.1 through 10.0.2.2"

# guest to host: a stream through the guest's checksum offload (CSUM: the
# device completes each TCP checksum, or slirp would drop the segment) and TSO
python3 - "$tmp/sinkport" >"$tmp/sink" <<'PY' 2>/dev/null &
import hashlib, os, socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(1)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
s.settimeout(100)
c, _ = s.accept()
h, n = hashlib.sha256(), 0
while True:
    d = c.recv(65536)
    if not d:
        break
    h.update(d)
    n += len(d)
print(h.hexdigest(), n, flush=True)
PY
sink=$!
sport=$(wait_port "$tmp/sinkport")
want=$(seq 1 1000000 | sha256sum | cut -d' ' -f1)
run --net user -- sh -c "$netup && seq 1 1000000 | nc 10.0.2.2 $sport; echo nc=\$?
	for d in /sys/bus/virtio/devices/*; do
		[ \$(cat \$d/device) = 0x0001 ] && echo features=\$(cat \$d/features); done; true"
wait $sink
feat=$(sed -n 's/^features=//p' "$tmp/cmd")
result "$([ "$rc" = 0 ] && grep -qx nc=0 "$tmp/cmd" && grep -q "^$want 6888896$" "$tmp/sink"; echo $?)" \
	"--net user: 6.9 MB from the guest reach a socket on the host intact (checksums by the device)"
result "$([ "${feat:0:1}" = 1 ] && [ "${feat:11:1}" = 1 ] && [ "${feat:12:1}" = 0 ] && [ "${feat:1:1}" = 1 ]; echo $?)" \
	"virtio-net --net user: the guest took CSUM, GUEST_CSUM and HOST_TSO4, and no TSO6 is offered (features $feat)"

# --net tap:IF in a network namespace of our own: a tap device with 10.9.0.1,
# a server on it, the guest 10.9.0.2 fetches a file through the tap
ns=ring3-bt-virtio-$$
if ! ip netns add "$ns" 2>"$tmp/ns.err"; then
	n=$((n + 1))
	echo "ok $n - --net tap # SKIP cannot make a network namespace: $(head -1 "$tmp/ns.err")"
else
	trap '[ -n "$srv" ] && kill "$srv" 2>/dev/null; ip netns del "$ns" 2>/dev/null; rm -rf "$tmp"' EXIT
	ip -n "$ns" link set lo up
	ip netns exec "$ns" ip tuntap add dev r3tap0 mode tap
	ip -n "$ns" addr add 10.9.0.1/24 dev r3tap0
	ip -n "$ns" link set r3tap0 up
	kill "$srv" 2>/dev/null
	serve 10.9.0.1 ip netns exec "$ns"
	want=$(sha256sum <"$tmp/www/f.txt" | cut -d' ' -f1)
	timeout 120 ip netns exec "$ns" ./ring3 run --engine bt --net tap:r3tap0 -- sh -c \
		"ip link set eth0 up && ip addr add 10.9.0.2/24 dev eth0 && wget -q -O - http://10.9.0.1:$port/f.txt | sha256sum" \
		</dev/null >"$tmp/out" 2>&1
	rc=$?
	result "$([ -n "$port" ] && [ "$rc" = 0 ] && grep -q "^$want " "$tmp/out"; echo $?)" \
		"--net tap:r3tap0 (in a network namespace): the guest fetches a file from a server on the tap"
fi

echo "1..$n"
[ "$fails" = 0 ]
