/*
 * Guest RAM in a memfd. MAP_NORESERVE and lazy allocation keep the monitor's
 * footprint to the pages the guest touches.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mem.h"

int mem_init(struct guest_mem *m, uint64_t size)
{
	uint64_t low = size < MEM_PCI_HOLE_START ? size : MEM_PCI_HOLE_START;
	int err;

	memset(m, 0, sizeof(*m));
	m->fd = memfd_create("ring3-guest-ram", MFD_CLOEXEC);
	if (m->fd < 0)
		return -errno;
	if (ftruncate(m->fd, (off_t)size) < 0)
		goto err_errno;
	m->host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, m->fd, 0);
	if (m->host == MAP_FAILED) {
		m->host = NULL;
		goto err_errno;
	}
	m->size = size;
	m->region[0] = (struct mem_region){ .gpa = 0, .size = low, .offset = 0 };
	m->nr_regions = 1;
	if (size > low) {
		m->region[1] = (struct mem_region){ .gpa = MEM_4G, .size = size - low, .offset = low };
		m->nr_regions = 2;
	}
	return 0;

err_errno:
	err = -errno;
	close(m->fd);
	m->fd = -1;
	return err;
}

void mem_destroy(struct guest_mem *m)
{
	if (m->host)
		munmap(m->host, m->size);
	if (m->fd >= 0)
		close(m->fd);
	m->host = NULL;
	m->fd = -1;
}

void *mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	for (int i = 0; i < m->nr_regions; i++) {
		const struct mem_region *r = &m->region[i];

		/* written so that gpa + len cannot overflow */
		if (gpa >= r->gpa && gpa - r->gpa <= r->size && len <= r->size - (gpa - r->gpa))
			return m->host + r->offset + (gpa - r->gpa);
	}
	return NULL;
}

uint64_t mem_top(const struct guest_mem *m)
{
	const struct mem_region *r = &m->region[m->nr_regions - 1];

	return r->gpa + r->size;
}
