/*
 * virtio-net (virtio 1.2 §5.1): not built yet. --net is parsed and refused
 * here with one line, rather than silently giving the guest no network.
 */
#include <errno.h>

#include "../../core/log.h"
#include "../../core/vm.h"
#include "virtio.h"

int virtio_net_init(struct vm *vm)
{
	log_msg("--net: virtio-net is not built yet");
	return -ENOSYS;
}
