/*
 * epoll with one registration record per fd. Callbacks run on the I/O thread
 * and must not block.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "evloop.h"
#include "log.h"

struct evloop_entry {
	int fd;
	evloop_fn fn;
	void *opaque;
};

uint64_t clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int timerfd_arm_ns(int fd, uint64_t ns, uint64_t period_ns)
{
	struct itimerspec its = {
		.it_value = { (time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull) },
		.it_interval = { (time_t)(period_ns / 1000000000ull),
				 (long)(period_ns % 1000000000ull) },
	};

	return timerfd_settime(fd, 0, &its, NULL) < 0 ? -errno : 0;
}

int evloop_init(struct evloop *l)
{
	memset(l, 0, sizeof(*l));
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		return -errno;
	l->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->stopfd < 0) {
		int err = -errno;

		close(l->epfd);
		return err;
	}
	return evloop_add(l, l->stopfd, EPOLLIN, NULL, NULL);
}

int evloop_add(struct evloop *l, int fd, uint32_t events, evloop_fn fn, void *opaque)
{
	struct evloop_entry *e = malloc(sizeof(*e));
	struct epoll_event ev = { .events = events };

	if (!e)
		return -ENOMEM;
	*e = (struct evloop_entry){ fd, fn, opaque };
	ev.data.ptr = e;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = -errno;

		free(e);
		return err;
	}
	return 0;
}

int evloop_add_timer(struct evloop *l, evloop_fn fn, void *opaque)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC), err;

	if (fd < 0)
		return -errno;
	err = evloop_add(l, fd, EPOLLIN, fn, opaque);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

bool evloop_timer_expired(int fd)
{
	uint64_t n;

	return read(fd, &n, sizeof(n)) == sizeof(n);
}

/* The entry leaks by design: the loop may still hold it; a VM has few of them. */
int evloop_del(struct evloop *l, int fd)
{
	return epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 ? -errno : 0;
}

static void *evloop_thread(void *arg)
{
	struct evloop *l = arg;
	struct epoll_event ev[16];

	for (;;) {
		int n = epoll_wait(l->epfd, ev, 16, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_msg("event loop: epoll_wait: %s", strerror(errno));
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			struct evloop_entry *e = ev[i].data.ptr;

			if (e->fd == l->stopfd)
				return NULL;
			e->fn(e->opaque, ev[i].events);
		}
	}
}

int evloop_start(struct evloop *l)
{
	int err = pthread_create(&l->thread, NULL, evloop_thread, l);

	if (err)
		return -err;
	pthread_setname_np(l->thread, "ring3-io");
	l->running = 1;
	return 0;
}

void evloop_stop(struct evloop *l)
{
	uint64_t one = 1;

	if (!l->running)
		return;
	if (write(l->stopfd, &one, sizeof(one)) < 0)
		log_msg("event loop: cannot stop: %s", strerror(errno));
	pthread_join(l->thread, NULL);
	l->running = 0;
	/* the stop request is consumed: a later evloop_start runs a loop that stays */
	if (read(l->stopfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_msg("event loop: cannot reset its stop request: %s", strerror(errno));
}

void evloop_destroy(struct evloop *l)
{
	evloop_stop(l);
	close(l->stopfd);
	close(l->epfd);
}
