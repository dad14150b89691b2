/*
 * ring3's virtio devices, built in one place: one virtio-blk per --disk, a
 * virtio-net for --net, a virtio-console for --console virtio, and always a
 * virtio-rng. Their counters for --stats.
 */
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "../../core/log.h"
#include "../../core/vm.h"
#include "blk.h"
#include "virtio.h"

int virtio_init_all(struct vm *vm)
{
	int err = virtio_blk_init_all(vm);

	if (!err && vm->cfg->net.kind != NET_NONE)
		err = virtio_net_init(vm);
	if (!err && vm->cfg->console_virtio)
		err = virtio_console_init(vm);
	if (!err)
		err = virtio_rng_init(vm);
	return err;
}

/* After the vCPUs and the I/O thread have stopped. */
void virtio_destroy_all(struct vm *vm)
{
	for (int i = 0; i < vm->nr_virtio; i++) {
		struct virtio_dev *vd = vm->virtio[i];

		if (vd->device_id == VIRTIO_ID_BLOCK)
			blkio_stop(vd->priv);
		if (vd->device_id == VIRTIO_ID_NET)
			virtio_net_stop(vd);
		virtio_pci_remove(vd);
	}
}

void virtio_print_stats(struct vm *vm, FILE *f)
{
	if (!vm->nr_virtio)
		return;
	fprintf(f, "  %-18s %10s %12s %12s %10s %10s\n", "virtio device", "requests", "bytes in",
		"bytes out", "notifies", "interrupts");
	for (int i = 0; i < vm->nr_virtio; i++) {
		const struct virtio_dev *vd = vm->virtio[i];

		fprintf(f, "  %-18s %10" PRIu64 " %12" PRIu64 " %12" PRIu64 " %10" PRIu64 " %10" PRIu64
			   "\n",
			vd->name, vd->stats.requests, vd->stats.bytes_in, vd->stats.bytes_out,
			vd->stats.notifies, vd->stats.interrupts);
	}
}
