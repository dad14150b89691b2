/*
 * The bt engine's placement of the vCPU relay on a host CPU (src/cpu/bt/place.c):
 * when it moves, and that it really pins the tasks it is given.
 */
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cpu/bt/place.h"
#include "tap.h"

#define S 1000000000ull

int main(void)
{
	struct bt_place p;
	cpu_set_t set;
	pid_t me = (pid_t)syscall(SYS_gettid);

	/* the decision: others took a fifth of the span, another CPU idled a third, not held */
	ok(place_should_move(S / 4, S / 2, S, 10 * S, 0), "others took 25%% of our CPU, another CPU idled 50%%: move");
	ok(!place_should_move(S / 10, S / 2, S, 10 * S, 0), "others took 10%%: stay");
	ok(!place_should_move(S / 4, S / 4, S, 10 * S, 0), "other CPU idle only 25%%: stay");
	ok(!place_should_move(S / 4, S / 2, S, 10 * S, 11 * S), "held after a move: stay");
	ok(place_should_move(S / 4, S / 2, S, 11 * S, 11 * S), "the hold ends: move");
	ok(!place_should_move(S, S, 0, 10 * S, 0), "an empty span: stay");

	/* the real thing: the calling thread is pinned to the CPU chosen */
	if (sched_getaffinity(0, sizeof(set), &set) < 0 || CPU_COUNT(&set) < 2) {
		printf("ok %d # SKIP fewer than 2 host CPUs allowed here\n", ++tap_n);
		return done_testing();
	}
	unsetenv("RING3_BT_PIN");
	place_init(&p);
	ok(p.on && p.cpu >= 0 && CPU_ISSET(p.cpu, &set), "placement is on, on an allowed CPU (%d)", p.cpu);
	place_add(&p, me);
	sched_getaffinity(0, sizeof(set), &set);
	ok(CPU_COUNT(&set) == 1 && CPU_ISSET(p.cpu, &set), "the task added runs on that CPU only");
	ok(p.one_cpu, "pinned: the relay's tasks share one CPU (no spin-waits)");
	{
		struct bt_place q;

		place_init(&q); /* this thread may now use one CPU only */
		ok(!q.on && q.one_cpu, "started on one allowed CPU: nothing to place, and no spin-waits");
		place_free(&q);
	}
	place_tick(&p, 5 * S);
	place_tick(&p, 7 * S);
	ok(p.t_last == 7 * S && p.run_last > 0,
	   "a look reads the relay's time on a CPU (/proc/<tid>/schedstat) and keeps it");

	/* a CPU the host refuses (here one that does not exist): placement ends, cleanly */
	cpu_set_t all = p.allowed;
	p.cpu = CPU_SETSIZE - 1;
	place_add(&p, me);
	sched_getaffinity(0, sizeof(set), &set);
	ok(!p.on && !p.one_cpu && CPU_EQUAL(&set, &all),
	   "a refused pin ends placement: the tasks get every allowed CPU back and spin-wait again");
	place_free(&p);

	setenv("RING3_BT_PIN", "0", 1);
	place_init(&p);
	ok(!p.on, "RING3_BT_PIN=0 turns placement off");
	place_free(&p);
	return done_testing();
}
