/*
 * Port I/O and MMIO dispatch: one registry per address space, one handler
 * signature for every device (kvmtool's ioport/mmio traps, TinyEMU's
 * read/write-by-offset ABI). Devices register while the VM is built, before
 * any vCPU runs, so lookups need no lock; each device locks its own state.
 */
#ifndef RING3_CORE_BUS_H
#define RING3_CORE_BUS_H

#include <stdbool.h>
#include <stdint.h>

/* data holds size bytes, little-endian; a read fills it. */
typedef void (*bus_fn)(void *opaque, uint64_t offset, uint8_t *data, unsigned size, bool is_write);

struct bus_range {
	uint64_t base, len;
	bus_fn fn;
	void *opaque;
	const char *name;
	uint64_t accesses; /* for --stats; updated without a lock, so approximate under SMP */
};

#define BUS_MAX_RANGES 64

struct bus {
	const char *name;
	int nr;
	struct bus_range range[BUS_MAX_RANGES]; /* sorted by base, never overlapping */
	uint64_t unclaimed;
};

int bus_register(struct bus *bus, uint64_t base, uint64_t len, bus_fn fn, void *opaque,
		 const char *name);
/*
 * Dispatch one access. An address no device claims reads as all ones and
 * swallows writes, as on a PC's bus; the return value is then -ENOENT.
 */
int bus_access(struct bus *bus, uint64_t addr, uint8_t *data, unsigned size, bool is_write);
const struct bus_range *bus_find(const struct bus *bus, uint64_t addr);

#endif
