/* Where the vCPU runs on the host: one CPU for the tasks that pass it around. place.c. */
#ifndef RING3_BT_PLACE_H
#define RING3_BT_PLACE_H

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define PLACE_MAX_TASKS 4

struct bt_place {
	bool on;		/* false: the host scheduler places every task (RING3_BT_PIN=0, one CPU) */
	bool one_cpu;		/* the tasks share one CPU: pinned, or only one CPU is allowed */
	int cpu;		/* the host CPU the vCPU's tasks share */
	cpu_set_t allowed;	/* the CPUs ring3 was started on (taskset, cgroups) */
	pid_t task[PLACE_MAX_TASKS];
	unsigned ntask;
	uint64_t t_last;	/* when the last tick looked (CLOCK_MONOTONIC ns) */
	uint64_t run_last;	/* the tasks' summed time on a CPU then (ns) */
	uint64_t delay_last;	/* ... and waiting for one (ns) */
	uint64_t *idle_last;	/* per host CPU: idle time then (USER_HZ ticks) */
	uint64_t *busy_last;	/* ... and busy time */
	int ncpu;
	uint64_t hold_until;	/* no move before this, after a move */
	uint64_t first_ns;	/* when the first look should come: 0.5-1.5 s in, random, so
				   that VMs started together do not all move at once */
	pthread_mutex_t lock;	/* place_add (vCPU thread) against place_tick (I/O thread) */
	unsigned seed;
	unsigned moves;
	uint64_t delay_total;	/* run-queue wait of the tasks while ring3 watched (ns) */
};

void place_init(struct bt_place *p);
void place_add(struct bt_place *p, pid_t tid);
/* About once a second (bt.c runs it from a timer on the I/O loop, off the vCPU's path). */
void place_tick(struct bt_place *p, uint64_t now_ns);
bool place_should_move(uint64_t others, uint64_t idle, uint64_t span, uint64_t now,
		       uint64_t hold_until);
void place_print(const struct bt_place *p, FILE *f);
void place_free(struct bt_place *p);

#endif
