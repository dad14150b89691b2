/*
 * The VM's life: build it in a fixed order (the table below), run one thread
 * per vCPU, hand every exit to the buses, and tear it all down again.
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../boot/loader.h"
#include "../dev/dev.h"
#include "../pv/pv.h"
#include "console.h"
#include "log.h"
#include "stats.h"
#include "vm.h"

void vm_request_exit(struct vm *vm, int status, const char *fmt, ...)
{
	bool was = false;
	va_list ap;

	if (!atomic_compare_exchange_strong(&vm->stopping, &was, true))
		return;
	vm->exit_status = status;
	va_start(ap, fmt);
	vsnprintf(vm->exit_reason, sizeof(vm->exit_reason), fmt, ap);
	va_end(ap);
	/* With panic=-1 a panicking kernel resets at once: that reset is the panic's end. */
	if (status == 0 && console_panic()) {
		vm->exit_status = 1;
		snprintf(vm->exit_reason, sizeof(vm->exit_reason), "guest kernel panic: %.120s",
			 console_panic());
	}
	for (int i = 0; i < vm->nr_vcpus; i++)
		if (vm->vcpu[i])
			vm->engine->vcpu_kick(vm->vcpu[i]);
}

static void vcpu_handle_exit(struct vcpu *vcpu, struct vcpu_exit *exit)
{
	struct vm *vm = vcpu->vm;

	switch (exit->reason) {
	case VCPU_EXIT_IO:
		for (uint32_t i = 0; i < exit->io.count; i++)
			bus_access(&vm->pio, exit->io.port, exit->io.data + i * exit->io.size,
				   exit->io.size, exit->io.is_write);
		break;
	case VCPU_EXIT_MMIO:
		bus_access(&vm->mmio, exit->mmio.gpa, exit->mmio.data, exit->mmio.size,
			   exit->mmio.is_write);
		break;
	case VCPU_EXIT_HYPERCALL:
		exit->hcall.ret = pv_hypercall(vcpu, exit->hcall.nr, exit->hcall.arg, exit->hcall.cr3);
		break;
	case VCPU_EXIT_SHUTDOWN:
		vm_request_exit(vm, 1, "guest triple fault (shutdown) on vcpu %d", vcpu->id);
		break;
	case VCPU_EXIT_FAULT:
		vm_request_exit(vm, 1, "vcpu %d: %s", vcpu->id, exit->fault.msg);
		break;
	case VCPU_EXIT_NONE:
	case VCPU_EXIT_HLT:
	case VCPU_EXIT__COUNT:
		break;
	}
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *vcpu = arg;
	struct vm *vm = vcpu->vm;
	struct vcpu_exit exit;
	sigset_t none;

	/* vcpu_kick may use SIGUSR1 to pull a thread out of KVM_RUN. */
	sigemptyset(&none);
	pthread_sigmask(SIG_SETMASK, &none, NULL);

	/*
	 * One exit struct for the thread's life, not cleared between runs: the
	 * data of an MMIO read, which the run loop fills, is what the engine
	 * completes the instruction with on the next vcpu_run.
	 */
	memset(&exit, 0, sizeof(exit));
	while (!atomic_load(&vm->stopping)) {
		uint64_t t0 = clock_ns(), t1;
		int err;

		err = vm->engine->vcpu_run(vcpu, &exit);
		t1 = clock_ns();
		vcpu->stats.run_ns += t1 - t0;
		if (err) {
			vm_request_exit(vm, 1, "vcpu %d: %s", vcpu->id, strerror(-err));
			break;
		}
		vcpu_handle_exit(vcpu, &exit);
		vcpu->stats.count[exit.reason]++;
		vcpu->stats.ns[exit.reason] += clock_ns() - t1;
	}
	return NULL;
}

/*
 * Build order. Each step may use what the steps above it made: devices need
 * the engine's IRQ routing, the loader needs RAM and the number of vCPUs (for
 * the ACPI tables), vCPUs need the loader's boot state.
 */
int vm_create(struct vm *vm, const struct vm_config *cfg, const struct cpu_engine *engine)
{
	struct cpu_boot_state boot;
	int err;

	memset(vm, 0, sizeof(*vm));
	vm->cfg = cfg;
	vm->engine = engine;
	vm->nr_vcpus = cfg->cpus;
	vm->pio.name = "port I/O";
	vm->mmio.name = "MMIO";
	vm->start_ns = clock_ns();

	err = mem_init(&vm->mem, cfg->mem_size); /* guest RAM in a memfd */
	if (err) {
		log_msg("cannot allocate %llu MiB of guest RAM: %s",
			(unsigned long long)(cfg->mem_size >> 20), strerror(-err));
		return err;
	}
	err = evloop_init(&vm->loop); /* the I/O thread's epoll */
	if (err)
		goto err_mem;
	err = engine->init(vm); /* VM, memory slots, irqchip */
	if (err)
		goto err_loop;
	err = dev_init_all(vm); /* UART, RTC, i8042, debug exit, ACPI PM, PIC/PIT */
	if (err)
		goto err_dev;
	err = loader_load(vm, &boot); /* kernel, initrd, command line, boot tables */
	if (err)
		goto err_dev;
	/* The kernel image passed through the heap: give those pages back. */
	malloc_trim(0);
	for (int i = 0; i < vm->nr_vcpus; i++) { /* vCPUs: the BSP starts at boot */
		struct vcpu *v = calloc(1, sizeof(*v));

		if (!v) {
			err = -ENOMEM;
			goto err_dev;
		}
		v->vm = vm;
		v->id = i;
		v->boot = boot;
		vm->vcpu[i] = v;
		err = engine->vcpu_init(v, &boot);
		if (err) {
			log_msg("%s engine: cannot create vcpu %d: %s", engine->name, i,
				strerror(-err));
			goto err_dev;
		}
	}
	return 0;

err_dev:
	dev_destroy_all(vm); /* before the engine, as in vm_destroy */
	engine->destroy(vm);
	for (int i = 0; i < vm->nr_vcpus; i++)
		free(vm->vcpu[i]);
err_loop:
	evloop_destroy(&vm->loop);
err_mem:
	mem_destroy(&vm->mem);
	return err;
}

int vm_run(struct vm *vm)
{
	int err;

	err = console_start(vm);
	if (err)
		return 1;
	err = evloop_start(&vm->loop);
	if (err) {
		log_msg("cannot start the I/O thread: %s", strerror(-err));
		return 1;
	}
	for (int i = 0; i < vm->nr_vcpus; i++) {
		char name[16];

		err = pthread_create(&vm->vcpu[i]->thread, NULL, vcpu_thread, vm->vcpu[i]);
		if (err) {
			vm_request_exit(vm, 1, "cannot start vcpu thread: %s", strerror(err));
			vm->nr_vcpus = i;
			break;
		}
		snprintf(name, sizeof(name), "ring3-vcpu%d", i);
		pthread_setname_np(vm->vcpu[i]->thread, name);
	}
	for (int i = 0; i < vm->nr_vcpus; i++)
		pthread_join(vm->vcpu[i]->thread, NULL);
	evloop_stop(&vm->loop);
	console_stop(vm);

	if (vm->exit_reason[0] && vm->exit_status != 0)
		log_msg("%s", vm->exit_reason);
	else if (vm->exit_reason[0])
		log_debug("%s", vm->exit_reason);
	if (vm->cfg->stats)
		stats_print(vm, stderr);
	return vm->exit_status;
}

/*
 * Devices go before the engine: their threads (blk workers, the net thread,
 * the pv timer) may still complete a request and raise an interrupt, which
 * reaches the engine (KVM's irqfd or MSI routes), until they are joined.
 */
void vm_destroy(struct vm *vm)
{
	dev_destroy_all(vm);
	vm->engine->destroy(vm);
	for (int i = 0; i < vm->nr_vcpus; i++)
		free(vm->vcpu[i]);
	evloop_destroy(&vm->loop);
	mem_destroy(&vm->mem);
}
