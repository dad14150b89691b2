/*
 * A task: a kernel stack, an address space (CR3) and, for the checks,
 * what its ring-3 program reported and which exceptions its probes caught.
 * Task 0 is the boot thread, which idles while user tasks run.
 */
#ifndef TK_TASK_H
#define TK_TASK_H

#include "kernel.h"
#include "user.h"

#define NTASKS 3
#define KSTACK_SIZE 8192

enum task_state { T_FREE, T_RUNNABLE, T_DEAD };

struct task {
	uint32_t kesp; /* saved kernel ESP while switched out (swtch) */
	uint32_t cr3;
	enum task_state state;
	uint32_t id;
	uint32_t slices;    /* timer ticks that found it running, and switches to it */
	uint32_t esp0_hits; /* system calls whose frame was on this task's kernel stack */
	uint32_t esp0_miss;
	uint32_t armed_slot;
	uint32_t report[NR_REPORTS];
	struct probe probe[NR_PROBES];
	uint8_t kstack[KSTACK_SIZE] __attribute__((aligned(16)));
};

struct task *task_current(void);

#endif
