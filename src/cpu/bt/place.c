/*
 * Where the vCPU runs on the host.
 *
 * Under bt one guest CPU is a relay of host tasks: the ring-0 child K, the
 * ring-3 child U and the monitor's vCPU thread pass the turn to each other
 * through futexes (docs/bt.md, "The hand-off"), and only one of them runs at
 * a time. Left alone, the host scheduler wakes each one on the CPU that is
 * idle, the other one: every hand-over then pays a cross-CPU wake-up (an IPI,
 * and in a virtual machine like ours a halted vCPU's exit and re-entry)
 * instead of a switch on the CPU it is already on. A fork/exec in a Linux
 * guest makes about 150 hand-overs; on our 2-CPU hosts that doubled its cost.
 * So the relay shares one host CPU, as QEMU and Firecracker users pin vCPU
 * threads. I/O threads and device workers stay free: they run beside it.
 *
 * Pinning must not trap the VM on a busy CPU. Once a second a timer on the
 * I/O loop (never the vCPU thread: this reads /proc) compares the time the
 * relay's CPU was busy (/proc/stat) with the time the relay's tasks ran
 * (/proc/<tid>/schedstat, Linux Documentation/scheduler/sched-stats.rst):
 * when other tasks took more than a fifth of the second and another allowed
 * CPU was idle for more than a third of it, the relay moves there, then
 * holds still for 2-4 s (a random hold, so that two VMs on one CPU do not
 * swap places forever).
 */
#include "place.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../core/log.h"

#define TICK_NS 1000000000ull

/*
 * Pin one task. A refusal (a cpuset that changed, a CPU gone offline) ends
 * placement: the tasks go back to every allowed CPU and, no longer sharing
 * one, wait for each other by spinning again (one_cpu false).
 */
static void set_cpu(struct bt_place *p, pid_t tid)
{
	cpu_set_t one;

	CPU_ZERO(&one);
	CPU_SET(p->cpu, &one);
	if (sched_setaffinity(tid, sizeof(one), &one) == 0 || errno == ESRCH)
		return; /* a task that is gone (a child being reaped) is no error here */
	log_msg("bt: cannot place task %d on host CPU %d (%s); the host scheduler places the vCPU",
		(int)tid, p->cpu, strerror(errno));
	p->on = false;
	p->one_cpu = CPU_COUNT(&p->allowed) == 1;
	for (unsigned i = 0; i < p->ntask; i++)
		sched_setaffinity(p->task[i], sizeof(p->allowed), &p->allowed);
}

void place_init(struct bt_place *p)
{
	const char *env = getenv("RING3_BT_PIN");
	int cpu;

	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	p->cpu = -1;
	if (sched_getaffinity(0, sizeof(p->allowed), &p->allowed) < 0)
		return;
	/*
	 * One CPU allowed (taskset, a container's cpuset): the tasks share it
	 * whatever we do, so waiting for one of them by spinning only delays it.
	 */
	p->one_cpu = CPU_COUNT(&p->allowed) == 1;
	/* RING3_BT_PIN=0: leave every task to the host scheduler (for comparison) */
	if ((env && !strcmp(env, "0")) || CPU_COUNT(&p->allowed) < 2)
		return;
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &p->allowed))
			p->ncpu = c + 1;
	p->idle_last = calloc((size_t)p->ncpu, sizeof(*p->idle_last));
	p->busy_last = calloc((size_t)p->ncpu, sizeof(*p->busy_last));
	/* without /proc's statistics a pinned relay could never move off a busy CPU */
	if (!p->idle_last || !p->busy_last || access("/proc/stat", R_OK) ||
	    access("/proc/self/schedstat", R_OK))
		return;
	cpu = sched_getcpu();
	if (cpu < 0 || cpu >= p->ncpu || !CPU_ISSET(cpu, &p->allowed))
		for (cpu = 0; !CPU_ISSET(cpu, &p->allowed); cpu++)
			;
	p->cpu = cpu;
	p->seed = (unsigned)getpid();
	p->on = true;
	p->one_cpu = true;
	p->first_ns = 500000000ull + (uint64_t)(rand_r(&p->seed) % 1000) * 1000000ull;
}

void place_add(struct bt_place *p, pid_t tid)
{
	pthread_mutex_lock(&p->lock);
	if (p->on && p->ntask < PLACE_MAX_TASKS) {
		p->task[p->ntask++] = tid;
		set_cpu(p, tid);
	}
	pthread_mutex_unlock(&p->lock);
}

/* A task's time so far on a CPU and waiting for one (ns); 0s if it cannot be read. */
static void task_times(pid_t tid, uint64_t *run, uint64_t *wait)
{
	char path[64], buf[128];
	unsigned long long r, w;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)tid);
	f = fopen(path, "re");
	if (!f)
		return;
	if (fgets(buf, sizeof(buf), f) && sscanf(buf, "%llu %llu", &r, &w) == 2) {
		*run += r;
		*wait += w;
	}
	fclose(f);
}

/*
 * Reads each allowed CPU's idle (idle + iowait) and busy time (USER_HZ ticks,
 * /proc/stat) into p->idle_last and p->busy_last. Returns the CPU other than
 * ours that idled the most since the last call, with that idle time in *idle,
 * and our CPU's busy time since then in *busy; -1 if there is none.
 */
static int read_cpus(struct bt_place *p, uint64_t *idle, uint64_t *busy)
{
	char line[512];
	int best = -1;
	FILE *f = fopen("/proc/stat", "re");

	*idle = *busy = 0;
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long v[8] = { 0 };
		int c;

		if (strncmp(line, "cpu", 3) || line[3] < '0' || line[3] > '9')
			continue;
		if (sscanf(line + 3, "%d %llu %llu %llu %llu %llu %llu %llu %llu", &c, &v[0], &v[1],
			   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) < 6 ||
		    c < 0 || c >= p->ncpu || !CPU_ISSET(c, &p->allowed))
			continue;
		uint64_t id = v[3] + v[4], bz = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];

		if (p->idle_last[c] && c != p->cpu && id - p->idle_last[c] >= *idle) {
			*idle = id - p->idle_last[c];
			best = c;
		}
		if (c == p->cpu && p->busy_last[c])
			*busy = bz - p->busy_last[c];
		p->idle_last[c] = id;
		p->busy_last[c] = bz;
	}
	fclose(f);
	return best;
}

/*
 * Move the relay? Other tasks took `others` ns of its CPU during the last
 * `span` ns, while the idlest other CPU idled `idle` ns of it; no move while
 * held. (Not the relay's own run-queue wait: on one CPU each hand-over makes
 * the woken task wait a little for the one going to sleep, which adds up to a
 * fifth of the time in a fork/exec loop with nothing else running.)
 */
bool place_should_move(uint64_t others, uint64_t idle, uint64_t span, uint64_t now,
		       uint64_t hold_until)
{
	return span && others * 5 > span && idle * 3 > span && now >= hold_until;
}

static void look(struct bt_place *p, uint64_t now);

void place_tick(struct bt_place *p, uint64_t now)
{
	pthread_mutex_lock(&p->lock);
	if (p->on)
		look(p, now);
	pthread_mutex_unlock(&p->lock);
}

/* place_tick with the lock held: the first call takes the baseline. */
static void look(struct bt_place *p, uint64_t now)
{
	uint64_t run = 0, wait = 0, idle, busy, hz = (uint64_t)sysconf(_SC_CLK_TCK);
	uint64_t tick = hz ? 1000000000ull / hz : 0;
	int to;

	for (unsigned i = 0; i < p->ntask; i++)
		task_times(p->task[i], &run, &wait);
	to = read_cpus(p, &idle, &busy);
	if (p->t_last && run >= p->run_last && wait >= p->delay_last) {
		uint64_t ours = run - p->run_last, others = busy * tick > ours ? busy * tick - ours : 0;

		p->delay_total += wait - p->delay_last;
		if (to >= 0 && tick &&
		    place_should_move(others, idle * tick, now - p->t_last, now, p->hold_until)) {
			p->cpu = to;
			for (unsigned i = 0; i < p->ntask && p->on; i++)
				set_cpu(p, p->task[i]);
			p->moves++;
			p->hold_until = now + 2 * TICK_NS + (uint64_t)(rand_r(&p->seed) % 2000) * 1000000ull;
		}
	}
	p->run_last = run;
	p->delay_last = wait;
	p->t_last = now;
}

void place_print(const struct bt_place *p, FILE *f)
{
	if (!p->on) {
		fprintf(f, "    host CPU: not pinned (one allowed CPU, or RING3_BT_PIN=0)\n");
		return;
	}
	fprintf(f, "    host CPU: the vCPU's %u tasks share CPU %d; moved %u times, waited for a CPU %.1f ms\n",
		p->ntask, p->cpu, p->moves, (double)p->delay_total / 1e6);
}

void place_free(struct bt_place *p)
{
	free(p->idle_last);
	free(p->busy_last);
	p->idle_last = p->busy_last = NULL;
	pthread_mutex_destroy(&p->lock);
}
