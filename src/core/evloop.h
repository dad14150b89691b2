/*
 * The I/O thread: one epoll loop that serves the console, device timers and
 * (later) virtio backends, so that no vCPU thread ever blocks on device I/O.
 */
#ifndef RING3_CORE_EVLOOP_H
#define RING3_CORE_EVLOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

typedef void (*evloop_fn)(void *opaque, uint32_t events);

struct evloop {
	int epfd;
	int stopfd; /* an eventfd: written to end the loop */
	pthread_t thread;
	int running;
};

int evloop_init(struct evloop *l);
int evloop_add(struct evloop *l, int fd, uint32_t events, evloop_fn fn, void *opaque);
int evloop_del(struct evloop *l, int fd);
/* A new timerfd (disarmed, non-blocking) that calls fn on the loop: its fd, or -errno. */
int evloop_add_timer(struct evloop *l, evloop_fn fn, void *opaque);
/* In a timer's callback: did it really expire? (A re-arm after epoll saw it may undo that.) */
bool evloop_timer_expired(int fd);
int evloop_start(struct evloop *l);
void evloop_stop(struct evloop *l);
void evloop_destroy(struct evloop *l);

/* A timerfd that first fires after ns (0 disarms) and then every period_ns (0: once). */
int timerfd_arm_ns(int fd, uint64_t ns, uint64_t period_ns);
uint64_t clock_ns(void); /* CLOCK_MONOTONIC */

#endif
