/*
 * The exit table is the run loop's view, the same for every engine; each
 * engine then prints what only it can count (traps, translations, …).
 */
#include <inttypes.h>

#include "../dev/virtio/virtio.h"
#include "../pv/pv.h"
#include "bus.h"
#include "evloop.h"
#include "stats.h"
#include "vm.h"

static const char *const exit_names[VCPU_EXIT__COUNT] = {
	[VCPU_EXIT_NONE] = "none (kick)", [VCPU_EXIT_IO] = "port I/O",
	[VCPU_EXIT_MMIO] = "MMIO",	  [VCPU_EXIT_HLT] = "HLT",
	[VCPU_EXIT_HYPERCALL] = "hypercall", [VCPU_EXIT_SHUTDOWN] = "shutdown",
	[VCPU_EXIT_FAULT] = "fault",
};

const char *vcpu_exit_name(enum vcpu_exit_reason reason)
{
	return reason < VCPU_EXIT__COUNT ? exit_names[reason] : "?";
}

static void stats_bus(const struct bus *bus, FILE *f)
{
	for (int i = 0; i < bus->nr; i++)
		if (bus->range[i].accesses)
			fprintf(f, "  %-12s %-14s %#8" PRIx64 " %12" PRIu64 "\n", bus->name,
				bus->range[i].name, bus->range[i].base, bus->range[i].accesses);
	if (bus->unclaimed)
		fprintf(f, "  %-12s %-14s %8s %12" PRIu64 "\n", bus->name, "(unclaimed)", "",
			bus->unclaimed);
}

void stats_print(struct vm *vm, FILE *f)
{
	uint64_t count[VCPU_EXIT__COUNT] = { 0 }, ns[VCPU_EXIT__COUNT] = { 0 }, run_ns = 0;
	uint64_t wall = clock_ns() - vm->start_ns;

	for (int i = 0; i < vm->nr_vcpus; i++) {
		for (int r = 0; r < VCPU_EXIT__COUNT; r++) {
			count[r] += vm->vcpu[i]->stats.count[r];
			ns[r] += vm->vcpu[i]->stats.ns[r];
		}
		run_ns += vm->vcpu[i]->stats.run_ns;
	}
	fprintf(f, "\nring3 statistics: engine %s, %d vcpu(s), %.3f s wall\n", vm->engine->name,
		vm->nr_vcpus, (double)wall / 1e9);
	fprintf(f, "  %-14s %12s %14s %12s\n", "exit", "count", "monitor ms", "avg us");
	for (int r = 0; r < VCPU_EXIT__COUNT; r++) {
		if (!count[r])
			continue;
		fprintf(f, "  %-14s %12" PRIu64 " %14.3f %12.3f\n", exit_names[r], count[r],
			(double)ns[r] / 1e6, (double)ns[r] / 1e3 / (double)count[r]);
	}
	fprintf(f, "  %-14s %12s %14.3f\n", "in engine", "", (double)run_ns / 1e6);
	fprintf(f, "  device accesses:\n");
	stats_bus(&vm->pio, f);
	stats_bus(&vm->mmio, f);
	for (unsigned g = 0; g < 24; g++)
		if (vm->irq_count[g])
			fprintf(f, "  irq %-2u raised %12" PRIu64 "\n", g, vm->irq_count[g]);
	virtio_print_stats(vm, f);
	pv_print_stats(vm, f);
	if (vm->engine->print_stats)
		vm->engine->print_stats(vm, f);
	fflush(f);
}
