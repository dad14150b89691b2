/*
 * The debug-exit port at 0xf4: a write of V ends ring3 with status V.
 * QEMU's isa-debug-exit does the same but exits with (V << 1) | 1; ring3 gives
 * the value itself, so a test kernel's failure count is ring3's exit status.
 */
#include <string.h>

#include "../core/vm.h"
#include "dev.h"

static void debugexit_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	struct vm *vm = opaque;
	uint32_t v = 0;

	if (!is_write) {
		memset(data, 0xff, size);
		return;
	}
	memcpy(&v, data, size > 4 ? 4 : size);
	/* An exit status is a byte; keep any non-zero value non-zero. */
	vm_request_exit(vm, v > 255 ? 255 : (int)v, "guest wrote %u to the debug-exit port", v);
}

int debugexit_init(struct vm *vm)
{
	return bus_register(&vm->pio, DEBUGEXIT_PORT, 4, debugexit_io, vm, "debug-exit");
}
