/*
 * Sorted ranges and a binary search: a PC has a few dozen of them.
 */
#include <errno.h>
#include <string.h>

#include "bus.h"
#include "log.h"

int bus_register(struct bus *bus, uint64_t base, uint64_t len, bus_fn fn, void *opaque,
		 const char *name)
{
	int i;

	if (len == 0 || base + len < base || bus->nr == BUS_MAX_RANGES)
		return -EINVAL;
	for (i = 0; i < bus->nr; i++) {
		struct bus_range *r = &bus->range[i];

		if (base < r->base + r->len && r->base < base + len)
			return -EBUSY;
		if (r->base > base)
			break;
	}
	memmove(&bus->range[i + 1], &bus->range[i], (size_t)(bus->nr - i) * sizeof(bus->range[0]));
	bus->range[i] = (struct bus_range){ base, len, fn, opaque, name, 0 };
	bus->nr++;
	return 0;
}

const struct bus_range *bus_find(const struct bus *bus, uint64_t addr)
{
	int lo = 0, hi = bus->nr - 1;

	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		const struct bus_range *r = &bus->range[mid];

		if (addr < r->base)
			hi = mid - 1;
		else if (addr - r->base >= r->len)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

int bus_access(struct bus *bus, uint64_t addr, uint8_t *data, unsigned size, bool is_write)
{
	struct bus_range *r = (struct bus_range *)bus_find(bus, addr);

	/* An access that straddles the end of a range is the device's to clip. */
	if (!r || size == 0 || size > 8) {
		if (!is_write)
			memset(data, 0xff, size > 8 ? 8 : size);
		__atomic_add_fetch(&bus->unclaimed, 1, __ATOMIC_RELAXED);
		log_debug("%s: unclaimed %s of %u bytes at %#llx", bus->name,
			  is_write ? "write" : "read", size, (unsigned long long)addr);
		return -ENOENT;
	}
	r->accesses++;
	r->fn(r->opaque, addr - r->base, data, size, is_write);
	return 0;
}
