/*
 * boottime MARKER COMMAND [ARGS...]: runs a VMM, timestamps the first output
 * line containing MARKER (the guest's readiness line) and the VMM's exit,
 * and samples its memory every 20 ms from /proc/PID/status. Prints one line:
 *   ready_ms=R exit_ms=E hwm_kb=H guest_kb=G over_kb=V status=S
 * guest_kb is the guest RAM touched: the resident part of the mappings at
 * least BOOTTIME_GUEST_KB large (the guest RAM size; ring3's memfd, QEMU's RAM
 * block), peak over the run. over_kb = hwm_kb - guest_kb is "peak RSS minus
 * guest RAM": the VMM's own footprint.
 * Built statically by bench/boot.sh and run inside the nested test bed.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Resident kB of pid's mappings of at least min_kb: guest RAM, from /proc/PID/smaps. */
static long guest_rss(pid_t pid, long min_kb)
{
	char path[64], line[512];
	bool big = false;
	long total = 0, v;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "Size: %ld", &v) == 1)
			big = min_kb > 0 && v >= min_kb;
		else if (big && sscanf(line, "Rss: %ld", &v) == 1)
			total += v;
	}
	fclose(f);
	return total;
}

/* Peaks of VmHWM and of guest RAM (kB) of pid. */
static void sample(pid_t pid, long *hwm, long *guest)
{
	char path[64], line[256];
	long rss = -1, v, g;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "VmHWM: %ld", &v) == 1 && v > *hwm)
			*hwm = v;
		sscanf(line, "VmRSS: %ld", &rss);
	}
	fclose(f);
	if (rss < 0)
		return; /* a zombie: nothing left to measure */
	g = guest_rss(pid, getenv("BOOTTIME_GUEST_KB") ? atol(getenv("BOOTTIME_GUEST_KB")) : 0);
	if (g > *guest)
		*guest = g;
}

int main(int argc, char **argv)
{
	char buf[4096], line[512];
	size_t nline = 0;
	double t0, ready = -1, end;
	long hwm = 0, guest = 0;
	int pfd[2], status = 0;
	pid_t pid;

	if (argc < 3) {
		fprintf(stderr, "usage: boottime MARKER COMMAND [ARGS...]\n");
		return 2;
	}
	if (pipe(pfd) < 0)
		return 2;
	t0 = now_ms();
	pid = fork();
	if (pid < 0)
		return 2;
	if (pid == 0) {
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		close(pfd[0]);
		close(pfd[1]);
		execvp(argv[2], argv + 2);
		_exit(127);
	}
	close(pfd[1]);
	for (;;) {
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		int r = poll(&p, 1, 20);
		ssize_t n;

		sample(pid, &hwm, &guest);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		n = read(pfd[0], buf, sizeof(buf));
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != '\n' && nline < sizeof(line) - 1) {
				line[nline++] = buf[i];
				continue;
			}
			if (buf[i] != '\n')
				continue;
			line[nline] = 0;
			nline = 0;
			if (ready < 0 && strstr(line, argv[1]))
				ready = now_ms() - t0;
			if (getenv("BOOTTIME_VERBOSE")) /* each line with its time, for finding where it goes */
				fprintf(stderr, "%9.1f ms | %s\n", now_ms() - t0, line);
		}
	}
	waitpid(pid, &status, 0);
	end = now_ms() - t0;
	printf("ready_ms=%.1f exit_ms=%.1f hwm_kb=%ld guest_kb=%ld over_kb=%ld status=%d\n", ready,
	       end, hwm, guest, hwm - guest,
	       WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	return 0;
}
