/*
 * The calls that need the VM rather than the CPU: console output, shutdown
 * with a status, a one-shot timer on ISA IRQ 5, and yield. They run in the
 * monitor's vCPU thread (the bt engine's child forwards them here).
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "../core/console.h"
#include "../core/evloop.h"
#include "../core/log.h"
#include "../core/vm.h"
#include "pv.h"

/* The timer: a timerfd on the I/O thread, made with the VM (as pit.c and rtc.c do). */
struct pv_timer {
	struct vm *vm;
	int tfd;
};

static void timer_fired(void *opaque, uint32_t events)
{
	struct pv_timer *t = opaque;

	(void)events;
	/* not: a SET_TIMER disarmed it after epoll saw it expire; that one never fired */
	if (!evloop_timer_expired(t->tfd))
		return;
	irq_pulse(t->vm, PV_TIMER_IRQ); /* an edge, as the 8254's OUT0 gives the PIC */
}

int pv_init(struct vm *vm)
{
	struct pv_timer *t = calloc(1, sizeof(*t));
	int err;

	if (!t)
		return -ENOMEM;
	t->vm = vm;
	t->tfd = evloop_add_timer(&vm->loop, timer_fired, t);
	if (t->tfd < 0) {
		err = t->tfd;
		free(t);
		return err;
	}
	vm->pv_timer = t;
	return 0;
}

static int64_t set_timer(struct vm *vm, uint64_t ns)
{
	struct pv_timer *t = vm->pv_timer;

	if (!t)
		return -PV_ENOSYS;
	/* ns is from now (0 disarms: the ABI's cancel); one already past fires at once */
	return timerfd_arm_ns(t->tfd, ns, 0) ? -PV_EINVAL : 0;
}

void pv_destroy(struct vm *vm)
{
	struct pv_timer *t = vm->pv_timer;

	if (!t)
		return;
	evloop_del(&vm->loop, t->tfd);
	close(t->tfd);
	free(t);
	vm->pv_timer = NULL;
}

int64_t pv_vm_call(struct vcpu *vcpu, const struct pv_env *env, uint32_t nr,
		   const uint32_t arg[5])
{
	struct vm *vm = vcpu->vm;

	switch (nr) {
	case PV_CONSOLE_WRITE:
		if (arg[1] > PV_CONSOLE_MAX)
			return -PV_EINVAL;
		if (arg[0] > env->ram_size || arg[1] > env->ram_size - arg[0])
			return -PV_EFAULT;
		console_write(vm, env->ram + arg[0], arg[1]);
		return arg[1];
	case PV_SHUTDOWN:
		/* as the debug-exit port: ring3 exits with this status */
		vm_request_exit(vm, arg[0] > 255 ? 255 : (int)arg[0],
				"guest shutdown hypercall, status %u", arg[0]);
		return 0;
	case PV_SET_TIMER:
		return set_timer(vm, (uint64_t)arg[1] << 32 | arg[0]);
	case PV_YIELD:
		sched_yield();
		return 0;
	default:
		return -PV_ENOSYS;
	}
}
