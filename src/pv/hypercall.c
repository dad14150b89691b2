/*
 * Hypercall dispatch (docs/pv.md). Calls are numbered; an unknown number or a
 * bad argument is an error the guest sees, never a monitor failure.
 */
#include <errno.h>

#include "../core/vm.h"
#include "pv.h"

int64_t pv_hypercall(struct vcpu *vcpu, uint64_t nr, const uint64_t arg[5])
{
	(void)vcpu;
	(void)arg;
	(void)nr;
	return -ENOSYS;
}
