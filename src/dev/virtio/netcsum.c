/*
 * virtio-net checksum offload (virtio 1.2 §5.1.6.2): a frame the driver sent
 * with VIRTIO_NET_HDR_F_NEEDS_CSUM carries, at csum_start + csum_offset, the
 * folded sum of the pseudo-header only (Linux's CHECKSUM_PARTIAL); the device
 * finishes the job with the Internet checksum (RFC 1071) from csum_start to
 * the end of the frame. The offsets come from the guest and are checked.
 */
#include <errno.h>

#include "netcsum.h"

/* RFC 1071 sum of len bytes (big-endian 16-bit words), not yet folded. */
static uint64_t csum_add(const uint8_t *p, size_t len, uint64_t sum)
{
	size_t i = 0;

	for (; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (i < len)
		sum += (uint32_t)p[i] << 8;
	return sum;
}

uint16_t net_csum(const uint8_t *p, size_t len)
{
	uint64_t sum = csum_add(p, len, 0);

	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

int net_csum_complete(uint8_t *frame, size_t len, unsigned start, unsigned offset)
{
	size_t at = (size_t)start + offset;
	uint16_t c;

	if (start >= len || at + 2 > len) /* both are 16-bit: no overflow */
		return -EINVAL;
	c = net_csum(frame + start, len - start);
	/*
	 * A UDP checksum of 0 means "none" (RFC 768): send the same sum as 0xffff,
	 * its other one's-complement spelling, which TCP accepts too (as Linux).
	 */
	if (c == 0)
		c = 0xffff;
	frame[at] = (uint8_t)(c >> 8);
	frame[at + 1] = (uint8_t)c;
	return 0;
}
