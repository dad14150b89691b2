/* PLACEHOLDER: replaced by the kvm engine. */
#include <errno.h>
#include <stdio.h>

#include "../../core/vm.h"

static int kvm_check(const struct vm_config *cfg, char *why, size_t len)
{
	snprintf(why, len, "the kvm engine is not built yet");
	return -ENOSYS;
}

const struct cpu_engine kvm_engine = { .name = "kvm", .check = kvm_check };
