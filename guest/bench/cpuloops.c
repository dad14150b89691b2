/*
 * CPU-bound loops measured both inside the guest and natively, from this
 * one source and with the same flags: a byte-per-number sieve of
 * Eratosthenes and a table-driven CRC-32 (IEEE 802.3, reflected 0xedb88320).
 * No hardware, no libc: plain loops the compiler sees the same way twice.
 */
#include "bench.h"

/* Count the primes below n; buf holds n bytes. */
uint32_t sieve_count_primes(uint8_t *buf, uint32_t n)
{
	uint32_t count = 0;

	for (uint32_t i = 0; i < n; i++)
		buf[i] = 1;
	buf[0] = buf[1] = 0;
	for (uint32_t i = 2; i * i < n; i++)
		if (buf[i])
			for (uint32_t j = i * i; j < n; j += i)
				buf[j] = 0;
	for (uint32_t i = 0; i < n; i++)
		count += buf[i];
	return count;
}

static uint32_t crc_table[256];

void crc32_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

/* Start with crc = 0; chain calls to continue a stream. */
uint32_t crc32_update(uint32_t crc, const uint8_t *buf, uint32_t len)
{
	crc = ~crc;
	for (uint32_t i = 0; i < len; i++)
		crc = crc_table[(crc ^ buf[i]) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* A fixed pseudo-random fill (xorshift32), so both builds hash the same bytes. */
void fill_pattern(uint8_t *buf, uint32_t len)
{
	uint32_t x = 2463534242u;

	for (uint32_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (uint8_t)x;
	}
}
