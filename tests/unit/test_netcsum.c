/*
 * virtio-net's checksum offload (netcsum.c): a TCP/IPv4 and a UDP frame left
 * with only the pseudo-header sum in their checksum fields, as Linux sends
 * them with NEEDS_CSUM, come out with the checksum a full computation gives;
 * offsets from a hostile guest that point outside the frame are refused.
 */
#include <errno.h>
#include <string.h>

#include "dev/virtio/netcsum.h"
#include "tap.h"

/* RFC 1071 sum, folded but not complemented, over several pieces. */
static uint32_t sum16(const uint8_t *p, size_t len, uint32_t s)
{
	for (size_t i = 0; i < len; i += 2)
		s += (uint32_t)p[i] << 8 | (i + 1 < len ? p[i + 1] : 0);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return s;
}

/* An Ethernet + IPv4 + L4 frame with payload; returns its length. */
static size_t make_frame(uint8_t *f, uint8_t proto, size_t payload)
{
	size_t l4 = proto == 6 ? 20 : 8, iplen = 20 + l4 + payload;

	memset(f, 0, 14 + iplen);
	f[12] = 0x08;				  /* IPv4 */
	f[14] = 0x45;
	f[16] = (uint8_t)(iplen >> 8), f[17] = (uint8_t)iplen;
	f[22] = 64, f[23] = proto;
	memcpy(f + 26, (uint8_t[]){ 10, 0, 2, 15, 10, 0, 2, 2 }, 8);
	f[34] = 0x9c, f[35] = 0x40, f[36] = 0x13, f[37] = 0x88; /* ports */
	if (proto == 6)
		f[46] = 0x50; /* data offset 5 */
	else
		f[38] = (uint8_t)((8 + payload) >> 8), f[39] = (uint8_t)(8 + payload);
	for (size_t i = 0; i < payload; i++)
		f[14 + 20 + l4 + i] = (uint8_t)(i * 7 + 3);
	return 14 + iplen;
}

/* The pseudo-header sum (RFC 793 §3.1, RFC 768) for the L4 part of f. */
static uint32_t pseudo(const uint8_t *f, size_t len)
{
	uint8_t ph[12] = { 0 };
	size_t l4len = len - 34;

	memcpy(ph, f + 26, 8);
	ph[9] = f[23];
	ph[10] = (uint8_t)(l4len >> 8), ph[11] = (uint8_t)l4len;
	return sum16(ph, 12, 0);
}

/* Does the L4 checksum verify (sum over pseudo-header and segment = 0xffff)? */
static bool verifies(const uint8_t *f, size_t len)
{
	return sum16(f + 34, len - 34, pseudo(f, len)) == 0xffff;
}

static void partial(uint8_t *f, size_t len, unsigned off)
{
	uint32_t ps = pseudo(f, len);

	f[34 + off] = (uint8_t)(ps >> 8), f[34 + off + 1] = (uint8_t)ps;
}

int main(void)
{
	static uint8_t f[14 + 65535];
	size_t len;

	len = make_frame(f, 6, 1460);
	partial(f, len, 16);
	ok(!verifies(f, len), "a TCP frame with only the pseudo-header sum does not verify");
	ok(net_csum_complete(f, len, 34, 16) == 0 && verifies(f, len),
	   "net_csum_complete gives a TCP/IPv4 checksum that verifies");

	len = make_frame(f, 6, 65535 - 40); /* a TSO frame: the largest IP packet */
	partial(f, len, 16);
	ok(net_csum_complete(f, len, 34, 16) == 0 && verifies(f, len),
	   "a 64 KiB TSO segment's checksum verifies");

	len = make_frame(f, 17, 333); /* odd length: the last byte is padded */
	partial(f, len, 6);
	ok(net_csum_complete(f, len, 34, 6) == 0 && verifies(f, len),
	   "a UDP frame of odd length verifies");
	uint8_t z[4] = { 0xff, 0xff, 0, 0 }; /* sums to 0xffff: the checksum would be 0 */

	ok(net_csum_complete(z, 4, 0, 2) == 0 && z[2] == 0xff && z[3] == 0xff,
	   "a checksum that comes out 0 is sent as 0xffff (UDP's 0 means none)");

	uint8_t ip[20] = { 0x45, 0, 0, 20, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 2, 15, 10, 0, 2, 2 };
	uint16_t c = net_csum(ip, 20);

	ip[10] = (uint8_t)(c >> 8), ip[11] = (uint8_t)c;
	ok(sum16(ip, 20, 0) == 0xffff, "net_csum of an IPv4 header makes it verify");

	len = make_frame(f, 6, 100);
	ok(net_csum_complete(f, len, (unsigned)len, 0) == -EINVAL, "csum_start at the end: refused");
	ok(net_csum_complete(f, len, 34, (unsigned)len - 35) == -EINVAL,
	   "a checksum field one byte past the end: refused");
	ok(net_csum_complete(f, len, 34, (unsigned)len - 36) == 0,
	   "a checksum field in the last two bytes: taken");
	ok(net_csum_complete(f, len, 0xffff, 0xffff) == -EINVAL, "the largest offsets: refused");
	ok(net_csum_complete(f, 0, 0, 0) == -EINVAL, "an empty frame: refused");
	return done_testing();
}
