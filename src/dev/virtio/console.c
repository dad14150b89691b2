/*
 * virtio-console (virtio 1.2 §5.3): not built yet; --console virtio is
 * refused here with one line.
 */
#include <errno.h>

#include "../../core/log.h"
#include "../../core/vm.h"
#include "virtio.h"

int virtio_console_init(struct vm *vm)
{
	log_msg("--console virtio: virtio-console is not built yet");
	return -ENOSYS;
}
