/*
 * Ring-3 tasks: each gets its own page directory, a kernel stack whose top
 * is the TSS's ESP0 while it runs, and is started by an IRET into ring 3.
 * The timer preempts them round-robin. Intel SDM vol. 3 ch. 6.12.1
 * (stack switch on a privilege change), ch. 7 (TSS).
 */
#include "task.h"

extern char __utext_start[], __utext_end[], __udata_start[], __udata_end[];
extern char trapret[];
void swtch(uint32_t *save_esp, uint32_t new_esp);

static struct task tasks[NTASKS];
static struct task *current = &tasks[0];
static uint32_t user_switches; /* preemptions that moved the CPU between user tasks */
static uint32_t run_started;

struct task *task_current(void)
{
	return current;
}

void task_init(void)
{
	tasks[0].state = T_RUNNABLE;
	tasks[0].cr3 = (uint32_t)kernel_pd;
}

/*
 * The user half of an address space, all in PDE 1 (4-8 MiB): the program's
 * code shared read-only, private copies of its data, and a stack page.
 * Returns the user stack pointer.
 */
static uint32_t map_user_image(uint32_t *pd, uint32_t id, uint32_t mode, uint32_t arg)
{
	uint32_t *pt = (uint32_t *)frame_alloc();
	pd[PDX(USER_BASE)] = (uint32_t)pt | PTE_P | PTE_W | PTE_U;

	for (uint32_t va = (uint32_t)__utext_start; va < (uint32_t)__utext_end; va += PAGE_SIZE)
		pt[PTX(va)] = va | PTE_P | PTE_U;
	for (uint32_t va = (uint32_t)__udata_start; va < (uint32_t)__udata_end; va += PAGE_SIZE) {
		uint32_t f = frame_alloc();
		memcpy((void *)f, (void *)va, PAGE_SIZE);
		pt[PTX(va)] = f | PTE_P | PTE_W | PTE_U;
	}
	uint32_t stack = frame_alloc();
	pt[PTX(USER_STACK_TOP - PAGE_SIZE)] = stack | PTE_P | PTE_W | PTE_U;

	/* user_main(id, mode, arg) with a null return address: it must not return. */
	uint32_t *sp = (uint32_t *)(stack + PAGE_SIZE - 16);
	sp[0] = 0;
	sp[1] = id;
	sp[2] = mode;
	sp[3] = arg;
	return USER_STACK_TOP - 16;
}

/*
 * Lay out the new kernel stack as if the task had been interrupted in ring
 * 3 and then switched away: swtch() pops four registers and "returns" to
 * trapret, whose IRET enters user_main in ring 3 with interrupts on.
 */
struct task *task_spawn(uint32_t mode, uint32_t arg)
{
	struct task *t = 0;

	for (int i = 1; i < NTASKS && !t; i++)
		if (tasks[i].state != T_RUNNABLE)
			t = &tasks[i];
	if (!t)
		tap_bail("no free task slot");
	memset(t, 0, sizeof(*t));
	t->id = (uint32_t)(t - tasks);
	t->armed_slot = NR_PROBES; /* nothing armed */
	for (int i = 0; i < NR_PROBES; i++)
		t->probe[i].vector = PROBE_NONE;

	uint32_t *pd = pd_new_user();
	uint32_t usp = map_user_image(pd, t->id, mode, arg);
	t->cr3 = (uint32_t)pd;

	struct trapframe *tf = (struct trapframe *)(t->kstack + KSTACK_SIZE) - 1;
	tf->cs = SEL_UCODE;
	tf->ss = tf->ds = tf->es = tf->fs = tf->gs = SEL_UDATA;
	tf->eflags = FL_RESERVED1 | FL_IF; /* IOPL 0 */
	tf->eip = (uint32_t)user_main;
	tf->esp = usp;
	uint32_t *ksp = (uint32_t *)tf;
	*--ksp = (uint32_t)trapret;
	ksp -= 4; /* EBP, EBX, ESI, EDI for swtch() to pop */
	t->kesp = (uint32_t)ksp;
	t->state = T_RUNNABLE;
	return t;
}

static void switch_to(struct task *next)
{
	struct task *prev = current;

	if (next == prev)
		return;
	current = next;
	gdt_set_esp0((uint32_t)(next->kstack + KSTACK_SIZE));
	write_cr3(next->cr3);
	swtch(&prev->kesp, next->kesp);
}

/* Round robin over the user tasks after the current one; task 0 when none. */
static struct task *pick_next(void)
{
	for (int i = 1; i <= NTASKS; i++) {
		struct task *t = &tasks[(current - tasks + i) % NTASKS];
		if (t != &tasks[0] && t->state == T_RUNNABLE)
			return t;
	}
	return &tasks[0];
}

/*
 * Timer tick: preempt a task running in ring 3, or wake the idle boot
 * thread's HLT. Kernel code inside a system call is never preempted: all
 * gates are interrupt gates, so IF is 0 there anyway.
 */
void task_tick(struct trapframe *tf)
{
	if ((tf->cs & 3) != 3 && current != &tasks[0])
		return;
	if (current != &tasks[0] && ticks - run_started > 20 * HZ)
		tap_bail("user tasks still running after 20 s");
	struct task *next = pick_next();
	if (next != &tasks[0])
		next->slices++;
	if (current != &tasks[0] && next != current)
		user_switches++;
	switch_to(next);
}

void task_exit(void)
{
	current->state = T_DEAD;
	switch_to(pick_next());
	tap_bail("a dead task was scheduled");
}

/* Run every spawned task to completion; the boot thread sleeps meanwhile. */
void task_run_all(void)
{
	run_started = ticks;
	for (;;) {
		int live = 0;
		for (int i = 1; i < NTASKS; i++)
			live |= tasks[i].state == T_RUNNABLE;
		if (!live)
			break;
		if (timer_wait_ticks(1) < 0)
			tap_bail("no timer: cannot run user tasks");
	}
}

/* An exception in ring 3: only a probe the task armed may catch it. */
int task_user_fault(struct trapframe *tf, uint32_t cr2)
{
	if (current->armed_slot >= NR_PROBES)
		return 0;
	return probe_catch(&current->probe[current->armed_slot], tf, cr2);
}

uint32_t task_switches(void)
{
	return user_switches;
}
