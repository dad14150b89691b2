/*
 * The Internet checksum (RFC 1071) for virtio-net's checksum offload
 * (virtio 1.2 §5.1.6.2): pure functions, unit-tested.
 */
#ifndef RING3_DEV_VIRTIO_NETCSUM_H
#define RING3_DEV_VIRTIO_NETCSUM_H

#include <stddef.h>
#include <stdint.h>

/* The complemented, folded sum of p[0..len), as it goes into a header. */
uint16_t net_csum(const uint8_t *p, size_t len);
/*
 * Finish a NEEDS_CSUM frame: the checksum of frame[start..len) (which
 * includes the pseudo-header sum the driver left in the field) stored at
 * start + offset. -EINVAL when the field is not inside the frame.
 */
int net_csum_complete(uint8_t *frame, size_t len, unsigned start, unsigned offset);

#endif
