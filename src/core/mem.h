/*
 * Guest RAM: one memfd, mapped once in the monitor. The kvm engine registers
 * the same mapping as memory slots; the bt engine's sandbox child maps the
 * same file, so both see one copy of the guest's memory.
 *
 * Guest-physical layout (the PC's, as QEMU and Firecracker lay it out):
 *   0          .. min(size, 3 GiB)   RAM
 *   3 GiB      .. 4 GiB              the PCI hole: MMIO, IOAPIC, LAPIC, firmware
 *   4 GiB      .. 4 GiB + rest       RAM beyond 3 GiB
 */
#ifndef RING3_CORE_MEM_H
#define RING3_CORE_MEM_H

#include <stdbool.h>
#include <stdint.h>

#define MEM_PCI_HOLE_START 0xC0000000ull
#define MEM_4G 0x100000000ull
#define MEM_MAX_REGIONS 2

struct mem_region {
	uint64_t gpa;	 /* guest-physical start */
	uint64_t size;
	uint64_t offset; /* offset in the memfd and in guest_mem.host */
};

struct guest_mem {
	int fd;
	uint8_t *host;
	uint64_t size;
	int nr_regions;
	struct mem_region region[MEM_MAX_REGIONS];
};

int mem_init(struct guest_mem *m, uint64_t size);
void mem_destroy(struct guest_mem *m);
/* Host pointer for [gpa, gpa + len), or NULL unless all of it is RAM. */
void *mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len);
/* Highest guest-physical address of RAM, plus one. */
uint64_t mem_top(const struct guest_mem *m);

#endif
