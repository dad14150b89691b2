/* PLACEHOLDER: replaced by the bt engine. */
#include <errno.h>
#include <stdio.h>

#include "../../core/vm.h"

static int bt_check(const struct vm_config *cfg, char *why, size_t len)
{
	snprintf(why, len, "the bt engine is not built yet");
	return -ENOSYS;
}

const struct cpu_engine bt_engine = { .name = "bt", .check = bt_check };
