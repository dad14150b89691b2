/*
 * Fast paths for paravirtual devices, with fallbacks, so that devices are the
 * same under every engine. Routes are set lazily on the first interrupt after
 * the guest reprograms a vector: the guest writes an MSI-X entry 32 bits at a
 * time, and routing changes are expensive (KVM_SET_GSI_ROUTING).
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"
#include "vm.h"

int vm_ioeventfd_add(struct vm *vm, bool pio, uint64_t addr, unsigned len, int fd)
{
	if (!vm->engine->ioeventfd)
		return -EOPNOTSUPP;
	return vm->engine->ioeventfd(vm, pio, addr, len, fd, true) ? -EOPNOTSUPP : 0;
}

void vm_ioeventfd_del(struct vm *vm, bool pio, uint64_t addr, unsigned len, int fd)
{
	if (vm->engine->ioeventfd)
		vm->engine->ioeventfd(vm, pio, addr, len, fd, false);
}

int vm_msi_init(struct vm *vm, struct vm_msi *m)
{
	memset(m, 0, sizeof(*m));
	m->vm = vm;
	m->fd = m->gsi = -1;
	pthread_mutex_init(&m->lock, NULL);
	return 0;
}

void vm_msi_set(struct vm_msi *m, uint64_t addr, uint32_t data)
{
	pthread_mutex_lock(&m->lock);
	if (addr != m->addr || data != m->data) {
		m->addr = addr;
		m->data = data;
		m->dirty = true;
	}
	pthread_mutex_unlock(&m->lock);
}

/* With the lock held: bind an eventfd to a route for (addr, data). */
static void vm_msi_route(struct vm_msi *m)
{
	const struct cpu_engine *e = m->vm->engine;
	int gsi;

	m->dirty = false;
	if (!e->msi_route || !e->irqfd)
		return;
	gsi = e->msi_route(m->vm, m->gsi, m->addr, m->data);
	if (gsi < 0) {
		log_msg("cannot route an MSI: %s; delivering without irqfd", strerror(-gsi));
		return;
	}
	if (m->fd < 0) {
		m->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (m->fd < 0 || e->irqfd(m->vm, (unsigned)gsi, m->fd, true)) {
			if (m->fd >= 0)
				close(m->fd);
			m->fd = -1;
		}
	}
	m->gsi = gsi;
}

void vm_msi_fire(struct vm_msi *m)
{
	const struct cpu_engine *e = m->vm->engine;
	uint64_t one = 1;

	pthread_mutex_lock(&m->lock);
	if (m->dirty)
		vm_msi_route(m);
	if (m->fd >= 0 && m->gsi >= 0) {
		if (write(m->fd, &one, sizeof(one)) < 0)
			log_msg("irqfd write: %s", strerror(errno));
	} else if (e->msi) {
		e->msi(m->vm, m->addr, m->data);
	} else {
		log_guest("an MSI, but the %s engine cannot deliver one", e->name);
	}
	pthread_mutex_unlock(&m->lock);
}

/*
 * After the engine is gone: closing the eventfd is enough, an irqfd goes
 * with its eventfd (or with the VM).
 */
void vm_msi_destroy(struct vm_msi *m)
{
	if (m->fd >= 0)
		close(m->fd);
	m->fd = m->gsi = -1;
	pthread_mutex_destroy(&m->lock);
}
