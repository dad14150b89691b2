/*
 * The bt engine, monitor side: the engine ops the run loop calls. The guest
 * runs in a sandbox child (sandbox.c, runtime.c); this file hands it the turn,
 * waits for its exits, validates every field of them, routes interrupts from
 * ring3's own 8259 PIC, and waits in HLT. docs/bt.md.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../../core/evloop.h"
#include "../../core/log.h"
#include "../../core/vm.h"
#include "../../dev/pic.h"
#include "place.h"
#include "runtime.h"
#include "sandbox.h"
#include "shared.h"

#define SPIN_NS 300 /* a short spin: on a loaded host, sleeping at once hands over fastest */
#define WATCHDOG_NS 1000000000ull /* then look at the child at least this often */

struct bt_vm {
	struct vm *vm;
	struct bt_shared *sh;
	pid_t pid;   /* K: the child that runs ring 0 */
	pid_t pid_u; /* U: the child that runs ring 3 (-1 without the split) */
	bool running; /* the child has the turn */
	bool halted;
	bool dead;
	struct bt_exit ex;    /* the last exit, copied and validated */
	uint32_t wake;	      /* futex: bumped by interrupts and kicks while we wait in HLT */
	uint8_t iobuf[BT_IOBUF_SIZE];
	char msg[BT_MSG_SIZE];
	uint64_t exits[BT_EXIT__COUNT];
	struct bt_place place; /* the host CPU K, U and the vCPU thread share (place.c) */
	int place_fd;	       /* its once-a-second timer on the I/O loop, or -1 */
	bool placed;	       /* the vCPU thread has joined them */
};

static struct bt_vm *bt_of(struct vm *vm)
{
	return vm->engine_data;
}

static int bt_check(const struct vm_config *cfg, char *why, size_t len)
{
	if (cfg->kernel_kind == KERNEL_BZIMAGE64) {
		snprintf(why, len, "the bt engine runs 32-bit kernels; this is a 64-bit kernel and this "
				   "host has no usable KVM");
		return -ENOTSUP;
	}
	if (cfg->kernel_kind != KERNEL_MULTIBOOT && cfg->kernel_kind != KERNEL_BZIMAGE32) {
		snprintf(why, len, "the bt engine runs 32-bit multiboot and i386 bzImage kernels");
		return -ENOTSUP;
	}
	if (cfg->cpus > 1) {
		snprintf(why, len, "the bt engine runs one vCPU for now; use --cpus 1");
		return -ENOTSUP;
	}
	if (cfg->mem_size > 3ull << 30) {
		snprintf(why, len, "the bt engine gives a guest at most 3 GiB of RAM; use --mem 3G");
		return -ENOTSUP;
	}
	if (!(getauxval(AT_HWCAP2) & 2)) {
		snprintf(why, len, "the bt engine needs FSGSBASE (a CPU with it and Linux 5.9 or later)");
		return -ENOTSUP;
	}
	return 0;
}

static int bt_init(struct vm *vm)
{
	struct bt_vm *bt = calloc(1, sizeof(*bt));

	if (!bt)
		return -ENOMEM;
	bt->sh = mmap(NULL, sizeof(struct bt_shared), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (bt->sh == MAP_FAILED) {
		free(bt);
		return -errno;
	}
	bt->vm = vm;
	bt->pid = -1;
	bt->pid_u = -1;
	/* RING3_BT_TRANSLATE=0: guest ring 0 runs directly, trap-and-emulate only (for comparison) */
	const char *t = getenv("RING3_BT_TRANSLATE");
	bt->sh->translate = !(t && !strcmp(t, "0"));
	/*
	 * --bt-user: guest ring 3 translated too (every instruction the guest can
	 * tell apart is virtual) or direct (native speed; Linux's processes). auto:
	 * a multiboot kernel is a small kernel that may check itself (the test
	 * kernel does); Linux wants its user space fast (docs/bt.md, "Guest ring 3").
	 */
	enum bt_user_mode um = vm->cfg ? vm->cfg->bt_user : BT_USER_AUTO;
	if (um == BT_USER_AUTO)
		um = vm->cfg && vm->cfg->kernel_kind == KERNEL_MULTIBOOT ? BT_USER_TRANSLATE
									  : BT_USER_DIRECT;
	bt->sh->translate_user = bt->sh->translate && um == BT_USER_TRANSLATE;
	/*
	 * Translated ring 3 runs in the one child that holds the translation cache
	 * (U/S by mprotect). RING3_BT_SPLIT=0: one child for direct ring 3 too (for comparison).
	 */
	const char *sp = getenv("RING3_BT_SPLIT");
	bt->sh->split = !(sp && !strcmp(sp, "0")) && !bt->sh->translate_user;
	/* RING3_BT_CALLOUT=int3: callouts by signal instead of the far jump (for comparison) */
	t = getenv("RING3_BT_CALLOUT");
	bt->sh->callout_int3 = t && !strcmp(t, "int3");
	place_init(&bt->place);
	bt->place_fd = -1;
	bt->sh->one_cpu = bt->place.one_cpu;
	vm->engine_data = bt;
	return 0;
}

static long futex_wait(uint32_t *addr, uint32_t val, bool shared, uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull),
			       .tv_nsec = (long)(ns % 1000000000ull) };

	return syscall(SYS_futex, addr, shared ? FUTEX_WAIT : FUTEX_WAIT_PRIVATE, val, &ts, NULL,
		       0);
}

static void futex_wake(uint32_t *addr, bool shared)
{
	syscall(SYS_futex, addr, shared ? FUTEX_WAKE : FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Wait on the hand-off word and the children's robust "alive" futexes at once. */
static long futex_waitv2(struct bt_shared *sh, uint32_t alive, uint32_t alive_u, uint64_t ns)
{
	struct futex_waitv w[3] = {
		{ .val = BT_TURN_CHILD, .uaddr = (uintptr_t)&sh->turn, .flags = FUTEX_32 },
		{ .val = alive, .uaddr = (uintptr_t)&sh->alive, .flags = FUTEX_32 },
		{ .val = alive_u, .uaddr = (uintptr_t)&sh->alive_u, .flags = FUTEX_32 },
	};
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += (long)(ns % 1000000000ull);
	ts.tv_sec += (time_t)(ns / 1000000000ull) + ts.tv_nsec / 1000000000;
	ts.tv_nsec %= 1000000000;
	return syscall(SYS_futex_waitv, w, sh->split ? 3 : 2, 0, &ts, CLOCK_MONOTONIC);
}

/* Is either child gone? 1 and why. */
static int reap_any(struct bt_vm *bt, char *why, size_t len)
{
	if (bt->pid > 0 && sandbox_reap(bt->pid, bt->sh, why, len)) {
		bt->pid = -1;
		return 1;
	}
	if (bt->pid_u > 0 && sandbox_reap(bt->pid_u, bt->sh, why, len)) {
		bt->pid_u = -1;
		return 1;
	}
	return 0;
}

static void kill_children(struct bt_vm *bt)
{
	sandbox_kill(bt->pid);
	sandbox_kill(bt->pid_u);
	bt->pid = bt->pid_u = -1;
}

static void kick_children(struct bt_vm *bt)
{
	if (bt->pid > 0)
		kill(bt->pid, BT_SIGKICK);
	if (bt->pid_u > 0)
		kill(bt->pid_u, BT_SIGKICK);
}

static void child_died(struct bt_vm *bt)
{
	char why[BT_MSG_SIZE];
	int n = 0;

	for (int i = 0; i < 50 && !(n = reap_any(bt, why, sizeof(why))); i++)
		usleep(2000);
	if (!n)
		snprintf(why, sizeof(why), "bt: the sandbox child stopped responding");
	if (!bt->msg[0])
		snprintf(bt->msg, sizeof(bt->msg), "%.150s", why);
	bt->dead = true;
	kill_children(bt);
}

/*
 * The placement timer, on the I/O loop: once a second, move the relay if it
 * waits for its CPU (place.c reads /proc for that, so never on the vCPU
 * thread), and tell the children whether they still share one CPU.
 */
static void placement_timer(void *opaque, uint32_t events)
{
	struct bt_vm *bt = opaque;

	(void)events;
	if (!evloop_timer_expired(bt->place_fd))
		return;
	place_tick(&bt->place, clock_ns());
	__atomic_store_n(&bt->sh->one_cpu, bt->place.one_cpu, __ATOMIC_RELAXED);
}

/*
 * Wait until the child posts an exit. 0; -EINTR when the VM is stopping (the
 * child keeps its turn); -ECHILD when it died (bt->msg says why).
 */
static int wait_child(struct bt_vm *bt, bool stoppable)
{
	struct bt_shared *sh = bt->sh;
	uint64_t t0 = clock_ns();
	uint32_t alive = __atomic_load_n(&sh->alive, __ATOMIC_SEQ_CST);
	uint32_t alive_u = __atomic_load_n(&sh->alive_u, __ATOMIC_SEQ_CST);

	while (__atomic_load_n(&sh->turn, __ATOMIC_ACQUIRE) != BT_TURN_PARENT) {
		if (!sh->one_cpu && clock_ns() - t0 < SPIN_NS) {
			__builtin_ia32_pause();
			continue;
		}
		if (stoppable && atomic_load(&bt->vm->stopping))
			return -EINTR;
		__atomic_store_n(&sh->parent_sleeping, 1, __ATOMIC_SEQ_CST);
		long r = 0;
		if (__atomic_load_n(&sh->turn, __ATOMIC_SEQ_CST) != BT_TURN_PARENT)
			r = futex_waitv2(sh, alive, alive_u, WATCHDOG_NS);
		__atomic_store_n(&sh->parent_sleeping, 0, __ATOMIC_RELAXED);
		if (__atomic_load_n(&sh->turn, __ATOMIC_ACQUIRE) == BT_TURN_PARENT)
			break;
		if (__atomic_load_n(&sh->alive, __ATOMIC_SEQ_CST) != alive ||
		    __atomic_load_n(&sh->alive_u, __ATOMIC_SEQ_CST) != alive_u ||
		    reap_any(bt, bt->msg, sizeof(bt->msg))) {
			child_died(bt);
			return -ECHILD;
		}
		if (r < 0 && errno == ETIMEDOUT &&
		    !__atomic_exchange_n(&sh->kick_pending, 1, __ATOMIC_SEQ_CST))
			kick_children(bt); /* the watchdog: is it still a guest in there? */
	}
	return 0;
}

/* Hand the turn back to the child; deliver an interrupt if it can take one. */
static void resume(struct bt_vm *bt, bool window)
{
	struct bt_shared *sh = bt->sh;
	struct pic *pic = bt->vm->pic;
	int32_t vec = -1;

	if (window && pic && pic_intr(pic))
		vec = pic_ack(pic);
	sh->resume.vector = vec;
	sh->resume.irq = pic ? pic_intr(pic) : 0;
	bt->running = true;
	__atomic_store_n(&sh->turn, BT_TURN_CHILD, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&sh->child_sleeping, __ATOMIC_SEQ_CST))
		futex_wake(&sh->turn, true);
}

static void sanitize(char *dst, size_t len, const volatile char *src)
{
	size_t i;

	for (i = 0; i + 1 < len && i < BT_MSG_SIZE - 1 && src[i]; i++)
		dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
	dst[i] = 0;
}

static void fault(struct vcpu_exit *exit, const char *msg)
{
	exit->reason = VCPU_EXIT_FAULT;
	snprintf(exit->fault.msg, sizeof(exit->fault.msg), "%.150s", msg);
}

/* Copy the child's exit once, and check every field before anything uses it. */
static int take_exit(struct bt_vm *bt, struct vcpu_exit *exit)
{
	struct bt_exit e;
	volatile struct bt_exit *src = &bt->sh->exit;

	e.kind = src->kind;
	e.irq_window = src->irq_window != 0;
	e.port = src->port;
	e.size = src->size;
	e.count = src->count;
	e.is_write = src->is_write != 0;
	e.gpa = src->gpa;
	e.data = src->data;
	e.hc_nr = src->hc_nr;
	for (int i = 0; i < 5; i++)
		e.hc_arg[i] = src->hc_arg[i];
	bt->ex = e;
	bt->running = false;
	if (e.kind < BT_EXIT__COUNT)
		bt->exits[e.kind]++;
	switch (e.kind) {
	case BT_EXIT_IO:
		if (e.port > 0xffff || (e.size != 1 && e.size != 2 && e.size != 4) || !e.count ||
		    e.count > BT_IOBUF_SIZE / e.size)
			break;
		if (e.is_write)
			memcpy(bt->iobuf, bt->sh->iobuf, e.count * e.size);
		else
			memset(bt->iobuf, 0xff, e.count * e.size);
		exit->reason = VCPU_EXIT_IO;
		exit->io.port = (uint16_t)e.port;
		exit->io.size = (uint8_t)e.size;
		exit->io.is_write = e.is_write;
		exit->io.count = e.count;
		exit->io.data = bt->iobuf;
		return 0;
	case BT_EXIT_MMIO:
		if (e.gpa >= 1ull << 32 || (e.size != 1 && e.size != 2 && e.size != 4 && e.size != 8))
			break;
		exit->reason = VCPU_EXIT_MMIO;
		exit->mmio.gpa = e.gpa;
		exit->mmio.size = (uint8_t)e.size;
		exit->mmio.is_write = e.is_write;
		memcpy(exit->mmio.data, &e.data, 8);
		return 0;
	case BT_EXIT_HLT:
		bt->halted = true;
		if (!e.irq_window)
			log_guest("bt: the guest halted with interrupts disabled; it sleeps until the "
				  "VM is stopped");
		exit->reason = VCPU_EXIT_HLT;
		return 0;
	case BT_EXIT_INTA:
		return 1; /* handled inside vcpu_run */
	case BT_EXIT_HYPERCALL: /* the run loop's pv_hypercall checks every argument */
		exit->reason = VCPU_EXIT_HYPERCALL;
		exit->hcall.nr = e.hc_nr;
		for (int i = 0; i < 5; i++)
			exit->hcall.arg[i] = e.hc_arg[i];
		exit->hcall.cr3 = 0; /* only device calls come here: none reads page tables */
		exit->hcall.ret = -PV_ENOSYS;
		return 0;
	case BT_EXIT_SHUTDOWN:
		sanitize(bt->msg, sizeof(bt->msg), bt->sh->msg);
		if (bt->msg[0])
			log_msg("%s", bt->msg); /* which exceptions: the run loop only says "triple fault" */
		exit->reason = VCPU_EXIT_SHUTDOWN;
		return 0;
	case BT_EXIT_FAULT:
	case BT_EXIT_ESCAPE:
		sanitize(bt->msg, sizeof(bt->msg), bt->sh->msg);
		if (!bt->msg[0])
			snprintf(bt->msg, sizeof(bt->msg), "bt: the sandbox reported a fault");
		fault(exit, bt->msg);
		bt->dead = true;
		kill_children(bt);
		return 0;
	default:
		break;
	}
	snprintf(bt->msg, sizeof(bt->msg),
		 "bt: the sandbox sent an invalid exit (kind %u port %#x size %u count %u); VM stopped",
		 e.kind, e.port, e.size, e.count);
	fault(exit, bt->msg);
	bt->dead = true;
	kill_children(bt);
	return 0;
}

/* The previous exit's results go back to the child: IN data, MMIO read data. */
static void complete(struct bt_vm *bt, const struct vcpu_exit *exit)
{
	if (bt->ex.kind == BT_EXIT_IO && !bt->ex.is_write)
		memcpy(bt->sh->iobuf, bt->iobuf, bt->ex.count * bt->ex.size);
	if (bt->ex.kind == BT_EXIT_MMIO && !bt->ex.is_write)
		memcpy(&bt->sh->resume.data, exit->mmio.data, 8);
	if (bt->ex.kind == BT_EXIT_HYPERCALL)
		bt->sh->resume.hc_ret = exit->hcall.ret;
}

/* HLT: sleep until the PIC has an interrupt for us or the VM stops. */
static bool wait_interrupt(struct bt_vm *bt)
{
	struct pic *pic = bt->vm->pic;

	for (;;) {
		uint32_t seq = __atomic_load_n(&bt->wake, __ATOMIC_SEQ_CST);

		if (atomic_load(&bt->vm->stopping))
			return false;
		if (bt->ex.irq_window && pic && pic_intr(pic))
			return true;
		futex_wait(&bt->wake, seq, false, WATCHDOG_NS);
	}
}

static int bt_vcpu_run(struct vcpu *vcpu, struct vcpu_exit *exit)
{
	struct bt_vm *bt = bt_of(vcpu->vm);

	if (bt->dead) {
		fault(exit, bt->msg);
		return 0;
	}
	if (!bt->placed) {
		bt->placed = true;
		place_add(&bt->place, (pid_t)syscall(SYS_gettid));
		bt->sh->one_cpu = bt->place.one_cpu;
	}
	if (bt->halted) {
		if (!wait_interrupt(bt)) {
			exit->reason = VCPU_EXIT_NONE;
			return 0;
		}
		bt->halted = false;
		resume(bt, true);
	} else if (!bt->running) {
		complete(bt, exit);
		resume(bt, bt->ex.irq_window);
	}
	for (;;) {
		int r = wait_child(bt, true);

		if (r == -EINTR) {
			exit->reason = VCPU_EXIT_NONE;
			return 0;
		}
		if (r < 0) {
			fault(exit, bt->msg);
			return 0;
		}
		if (take_exit(bt, exit) == 0)
			return 0;
		resume(bt, true); /* INTA */
	}
}

/* The PIC raised INTR: wake a HLT, or tell the running guest to look. */
static void bt_pic_notify(void *opaque)
{
	struct bt_vm *bt = opaque;

	__atomic_add_fetch(&bt->wake, 1, __ATOMIC_SEQ_CST);
	futex_wake(&bt->wake, false);
	if (bt->pid > 0 && !bt->dead &&
	    __atomic_load_n(&bt->sh->turn, __ATOMIC_SEQ_CST) == BT_TURN_CHILD &&
	    !__atomic_exchange_n(&bt->sh->kick_pending, 1, __ATOMIC_SEQ_CST))
		kick_children(bt);
}

static void bt_vcpu_kick(struct vcpu *vcpu)
{
	struct bt_vm *bt = bt_of(vcpu->vm);

	__atomic_add_fetch(&bt->wake, 1, __ATOMIC_SEQ_CST);
	futex_wake(&bt->wake, false);
	futex_wake(&bt->sh->turn, true);
}

static void seg_of_boot(struct bt_seg *s, const struct cpu_seg *c)
{
	s->sel = c->sel;
	s->base = c->base;
	s->limit = c->limit;
	s->attr = (uint16_t)((c->type & 0xf) | (c->s ? BT_SEG_S : 0) | (c->dpl & 3) << 5 |
			     (c->present ? BT_SEG_P : 0) | (c->l ? 0x2000 : 0) |
			     (c->db ? BT_SEG_DB : 0) | (c->g ? BT_SEG_G : 0));
}

static int bt_vcpu_init(struct vcpu *vcpu, const struct cpu_boot_state *boot)
{
	struct vm *vm = vcpu->vm;
	struct bt_vm *bt = bt_of(vm);
	struct bt_vcpu *c = &bt->sh->vcpu;
	int err;

	if (boot->mode != CPU_MODE_PROT32) {
		log_msg("bt: the loader asked for a 64-bit start; the bt engine runs 32-bit kernels");
		return -ENOTSUP;
	}
	memset(c, 0, sizeof(*c));
	c->regs[BT_EAX] = (uint32_t)boot->rax;
	c->regs[BT_EBX] = (uint32_t)boot->rbx;
	c->regs[BT_ESP] = (uint32_t)boot->rsp;
	c->regs[BT_EBP] = (uint32_t)boot->rbp;
	c->regs[BT_ESI] = (uint32_t)boot->rsi;
	c->regs[BT_EDI] = (uint32_t)boot->rdi;
	c->eip = (uint32_t)boot->rip;
	c->eflags = 2;
	c->cr0 = (uint32_t)boot->cr0 | CR0_ET | CR0_PE;
	c->cr3 = (uint32_t)boot->cr3;
	c->cr4 = (uint32_t)boot->cr4;
	c->gdt_base = (uint32_t)boot->gdt_base;
	c->gdt_limit = boot->gdt_limit;
	c->idt_limit = 0x3ff;
	seg_of_boot(&c->seg[BT_CS], &boot->cs);
	for (int s = 0; s < BT_NSREG; s++)
		if (s != BT_CS)
			seg_of_boot(&c->seg[s], &boot->ds);
	c->dr[6] = 0xffff0ff0u;
	c->dr[7] = 0x400;
	c->apic_base = 0xfee00100u; /* BSP; no local APIC is offered (CPUID.1:EDX.APIC = 0) */
	c->misc_enable = 1;
	c->pat = 0x0007040600070406ull;

	if (vm->pic)
		pic_set_notify(vm->pic, bt_pic_notify, bt);
	if (bt->sh->split) {
		/* U first: K may hand it the vCPU as soon as K runs */
		err = sandbox_spawn(vm, bt->sh, BT_U, &bt->pid_u);
		if (err) {
			log_msg("bt: cannot start the sandbox: %s", strerror(-err));
			return err;
		}
		for (int i = 0; i < 100 && !__atomic_load_n(&bt->sh->u_ready, __ATOMIC_SEQ_CST); i++)
			futex_wait(&bt->sh->u_ready, 0, true, 100000000ull);
		if (__atomic_load_n(&bt->sh->u_ready, __ATOMIC_SEQ_CST) != 1) {
			char msg[BT_MSG_SIZE];

			sanitize(msg, sizeof(msg), bt->sh->msg);
			log_msg("%s", msg[0] ? msg : "bt: the sandbox's ring-3 child failed to start");
			kill_children(bt);
			return -EIO;
		}
	}
	err = sandbox_spawn(vm, bt->sh, BT_K, &bt->pid);
	if (err) {
		log_msg("bt: cannot start the sandbox: %s", strerror(-err));
		kill_children(bt);
		return err;
	}
	err = wait_child(bt, false);
	if (err || bt->sh->exit.kind != BT_EXIT_READY) {
		char msg[BT_MSG_SIZE];

		sanitize(msg, sizeof(msg), bt->sh->msg);
		log_msg("%s", err ? bt->msg : msg[0] ? msg : "bt: the sandbox failed to start");
		kill_children(bt);
		return -EIO;
	}
	place_add(&bt->place, bt->pid);
	if (bt->pid_u > 0)
		place_add(&bt->place, bt->pid_u);
	bt->sh->one_cpu = bt->place.one_cpu;
	if (bt->place.on) {
		bt->place_fd = evloop_add_timer(&vm->loop, placement_timer, bt);
		if (bt->place_fd >= 0)
			timerfd_arm_ns(bt->place_fd, bt->place.first_ns, 1000000000ull);
	}
	bt->running = false;
	bt->ex.kind = BT_EXIT_READY;
	bt->ex.irq_window = 0;
	vcpu->engine_data = bt;
	vcpu->stats.hcall_engine = bt->sh->pv.calls; /* --stats: the calls the child served */
	return 0;
}

static void bt_irq_line(struct vm *vm, unsigned gsi, int level)
{
	if (vm->pic && gsi < 16)
		pic_set_irq(vm->pic, gsi, level);
}

static double pct(uint64_t part, uint64_t whole)
{
	return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

static void bt_print_stats(struct vm *vm, FILE *f)
{
	static const char *const traps[BT_TRAP__COUNT] = {
		"#GP", "#PF", "#UD", "#BP or callout", "#DB", "#DE/#MF", "other exc", "syscall", "kick",
	};
	static const char *const insns[BT_I__COUNT] = {
		"cli", "sti", "hlt", "in", "out", "ins", "outs", "lgdt", "lidt", "lldt", "ltr",
		"mov cr", "mov dr", "clts", "lmsw", "invlpg", "rdmsr", "wrmsr", "wbinvd", "sreg load",
		"iret", "far jmp/call/ret", "int n", "cpuid", "int 0x80/syscall", "memory (mmio/top)",
		"other",
	};
	struct bt_vm *bt = bt_of(vm);
	struct bt_counters s;
	uint64_t total;

	if (!bt || !bt->sh)
		return;
	memcpy(&s, (const void *)&bt->sh->stats, sizeof(s));
	total = s.tsc_guest + s.tsc_runtime + s.tsc_wait;
	fprintf(f, "  bt engine:\n");
	fprintf(f, "    time: guest %.1f%%, runtime %.1f%%, waiting for the monitor %.1f%%\n",
		pct(s.tsc_guest, total), pct(s.tsc_runtime, total), pct(s.tsc_wait, total));
	fprintf(f, "    traps:");
	for (int i = 0; i < BT_TRAP__COUNT; i++)
		if (s.trap[i])
			fprintf(f, " %s %" PRIu64 ",", traps[i], s.trap[i]);
	fprintf(f, "\n    emulated:");
	for (int i = 0; i < BT_I__COUNT; i++)
		if (s.insn[i])
			fprintf(f, " %s %" PRIu64 ",", insns[i], s.insn[i]);
	fprintf(f, " (decoded already: %" PRIu64 ")", s.decode_hits);
	fprintf(f, "\n    exceptions reflected:");
	for (int i = 0; i < 32; i++)
		if (s.exc[i])
			fprintf(f, " %d:%" PRIu64, i, s.exc[i]);
	fprintf(f, "\n    interrupts delivered %" PRIu64 ", INT n %" PRIu64 ", ring switches %" PRIu64
		   "\n",
		s.irqs, s.soft_ints, s.ring_switches);
	fprintf(f, "    shadow: faults %" PRIu64 " (%" PRIu64 " in ring 3's), prefilled %" PRIu64
		   ", flushes %" PRIu64 " (CR4.PGE changes %" PRIu64 "), invlpg %" PRIu64
		   "\n    CR3 loads %" PRIu64 ": shadow revalidated %" PRIu64 " times, %" PRIu64
		   " pages kept; kernel-only runs hidden %" PRIu64 ", shown %" PRIu64
		   " (%" PRIu64 " at kernel entry)\n",
		s.shadow_faults, s.shadow_faults_u, s.prefills, s.shadow_flushes, s.pge_toggles,
		s.invlpg, s.cr3_loads, s.revals, s.reval_kept, s.us_hides, s.us_shows + s.us_preshows,
		s.us_preshows);
	fprintf(f, "    segments: host selectors replayed %" PRIu64 ", LDT writes %" PRIu64
		   "; ring-0/ring-3 child hand-overs %" PRIu64 "\n",
		s.seg_repairs, s.ldt_writes, s.child_switches);
	place_print(&bt->place, f);
	fprintf(f, "    exits to the monitor %" PRIu64 ", self-modifying writes %" PRIu64 "\n", s.exits,
		s.smc_writes);
	if (!bt->sh->translate) {
		fprintf(f, "    translation: off (RING3_BT_TRANSLATE=0)\n");
		return;
	}
	fprintf(f, "    translation: %" PRIu64 " blocks, %" PRIu64 " instructions, %.1f ms translating; "
		   "TC %" PRIu64 " KiB used, %" PRIu64 " flushes\n",
		s.tc_blocks, s.tc_insns, (double)s.tc_translate_tsc / 2.6e6, s.tc_used >> 10,
		s.tc_flushes);
	fprintf(f, "    TC lookups %" PRIu64 " (%.1f%% hits), chains %" PRIu64 ", blocks invalidated %" PRIu64
		   "\n",
		s.tc_lookups, pct(s.tc_lookup_hits, s.tc_lookups), s.tc_chains, s.tc_invalidated);
	fprintf(f, "    callouts: chain %" PRIu64 ", indirect %" PRIu64 ", irq window %" PRIu64
		   ", emulate %" PRIu64 "; each keeps %s\n",
		s.callout[BT_SITE_CHAIN], s.callout[BT_SITE_INDIRECT], s.callout[BT_SITE_IRQ_WINDOW],
		s.callout[BT_SITE_EMULATE],
		s.far_fx ? "the x87/SSE state (FXSAVE)" : "all the extended state (XSAVEOPT)");
}

static void bt_destroy(struct vm *vm)
{
	struct bt_vm *bt = bt_of(vm);

	if (!bt)
		return;
	if (vm->pic)
		pic_set_notify(vm->pic, NULL, NULL);
	kill_children(bt);
	if (bt->place_fd >= 0) { /* the loop has stopped (vm_run) before engines go */
		evloop_del(&vm->loop, bt->place_fd);
		close(bt->place_fd);
	}
	munmap(bt->sh, sizeof(struct bt_shared));
	place_free(&bt->place);
	free(bt);
	vm->engine_data = NULL;
}

const struct cpu_engine bt_engine = {
	.name = "bt",
	.flags = 0, /* ring3's own PIC and PIT */
	.check = bt_check,
	.init = bt_init,
	.vcpu_init = bt_vcpu_init,
	.vcpu_run = bt_vcpu_run,
	.vcpu_kick = bt_vcpu_kick,
	.irq_line = bt_irq_line,
	.print_stats = bt_print_stats,
	.destroy = bt_destroy,
};
