/*
 * Console plumbing between the host's stdin/stdout and the guest's consoles.
 * Output from the UART and from hvc0 (virtio-console) both goes to stdout;
 * input goes to one receiver: the UART, or hvc0 with --console virtio (the
 * default guest then runs its shell there). Input is read on the I/O thread;
 * bytes the receiver cannot take yet wait here.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "../dev/serial8250.h"
#include "../dev/virtio/virtio.h"
#include "console.h"
#include "log.h"
#include "stats.h"
#include "term.h"
#include "vm.h"

#define CTRL_A 0x01

static struct console {
	int out_fd;
	int in_fd;	 /* -1: no input */
	bool escapes;	 /* stdin is a terminal: Ctrl-A commands */
	bool saw_ctrl_a;
	bool in_polled;
	int retry_fd;	 /* timerfd: try the UART again when it was full */
	char pending[256];
	size_t npending, pos;
	char line[256];	 /* the current output line, for the panic watch */
	size_t nline;
	char panic[128]; /* the first "Kernel panic - not syncing:" reason seen */
} con = { .out_fd = -1, .in_fd = -1, .retry_fd = -1 };

static void console_say(const char *s)
{
	if (write(STDERR_FILENO, s, strlen(s)) < 0)
		return;
}

int console_open(const struct vm_config *cfg)
{
	switch (cfg->console) {
	case CONSOLE_STDIO:
		con.out_fd = STDOUT_FILENO;
		con.in_fd = STDIN_FILENO;
		break;
	case CONSOLE_FILE:
		con.out_fd = open(cfg->console_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
				  0644);
		if (con.out_fd < 0) {
			log_msg("cannot open console file %s: %s", cfg->console_path,
				strerror(errno));
			return -errno;
		}
		break;
	case CONSOLE_NONE:
		break;
	}
	return 0;
}

/* "---[ end Kernel panic - not syncing: …" closes Linux's panic report. */
static void console_watch(struct vm *vm, const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = buf[i];

		if (c != '\n' && con.nline < sizeof(con.line) - 1) {
			if (c != '\r')
				con.line[con.nline++] = c;
			continue;
		}
		if (c != '\n')
			continue;
		con.line[con.nline] = 0;
		/* panic=-1 resets before the "end" line: vm_request_exit checks this */
		const char *s = strstr(con.line, "Kernel panic - not syncing: ");
		if (s && !con.panic[0])
			snprintf(con.panic, sizeof(con.panic), "%s",
				 s + strlen("Kernel panic - not syncing: "));
		const char *p = strstr(con.line, "end Kernel panic - not syncing: ");
		if (p)
			vm_request_exit(vm, 1, "guest kernel panic: %.120s",
					p + strlen("end Kernel panic - not syncing: "));
		con.nline = 0;
	}
}

const char *console_panic(void)
{
	return con.panic[0] ? con.panic : NULL;
}

void console_write(struct vm *vm, const void *buf, size_t len)
{
	const char *p = buf;

	console_watch(vm, buf, len);
	if (con.out_fd < 0)
		return;
	while (len > 0) {
		ssize_t n = write(con.out_fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* the reader went away: the guest keeps running */
		p += n;
		len -= (size_t)n;
	}
}

static void console_help(void)
{
	console_say("\r\nC-a h    print this help\r\n"
		    "C-a x    exit ring3\r\n"
		    "C-a s    print statistics\r\n"
		    "C-a C-a  send C-a to the guest\r\n");
}

/* Interpret Ctrl-A escapes in place; returns the bytes meant for the guest. */
static size_t console_escapes(struct vm *vm, char *buf, size_t n)
{
	size_t out = 0;

	for (size_t i = 0; i < n; i++) {
		char c = buf[i];

		if (!con.saw_ctrl_a) {
			if (c == CTRL_A)
				con.saw_ctrl_a = true;
			else
				buf[out++] = c;
			continue;
		}
		con.saw_ctrl_a = false;
		switch (c) {
		case 'x':
		case 'X':
			vm_request_exit(vm, 0, "quit from the console (C-a x)");
			break;
		case 'h':
		case 'H':
		case '?':
			console_help();
			break;
		case 's':
		case 'S':
			term_restore();
			stats_print(vm, stderr);
			term_raw_enter(con.in_fd);
			break;
		case CTRL_A:
			buf[out++] = c;
			break;
		default:
			break;
		}
	}
	return out;
}

/*
 * The receiver takes what it has room for: the UART's FIFO, or hvc0's bytes
 * waiting for the guest's receive buffers (virtio 1.2 §5.3.6.1).
 */
static size_t console_deliver(struct vm *vm, const char *buf, size_t len)
{
	if (vm->cfg->console_virtio)
		return virtio_console_receive(vm, buf, len);
	return serial8250_receive(vm->uart, buf, len);
}

/* Hand pending bytes to the receiver; true when all went. */
static bool console_feed(struct vm *vm)
{
	while (con.pos < con.npending) {
		size_t n = console_deliver(vm, con.pending + con.pos, con.npending - con.pos);

		if (n == 0)
			return false;
		con.pos += n;
	}
	con.pos = con.npending = 0;
	return true;
}

static void console_on_input(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;
	ssize_t n;

	(void)events;
	if (con.npending && !console_feed(vm))
		return;
	n = read(con.in_fd, con.pending, sizeof(con.pending));
	if (n <= 0) {
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			return;
		evloop_del(&vm->loop, con.in_fd); /* end of input: the guest runs on */
		con.in_fd = -1;
		return;
	}
	con.npending = con.escapes ? console_escapes(vm, con.pending, (size_t)n) : (size_t)n;
	con.pos = 0;
	if (!console_feed(vm)) {
		/* The receiver is full: stop reading until it drains (retry timer). */
		evloop_del(&vm->loop, con.in_fd);
		con.in_polled = false;
		timerfd_arm_ns(con.retry_fd, 10 * 1000 * 1000, 0);
	}
}

static void console_on_retry(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;
	uint64_t ticks;

	(void)events;
	if (read(con.retry_fd, &ticks, sizeof(ticks)) < 0)
		return;
	console_rx_kick(vm);
}

void console_rx_kick(struct vm *vm)
{
	if (con.in_polled || con.in_fd < 0)
		return;
	if (!console_feed(vm)) {
		timerfd_arm_ns(con.retry_fd, 10 * 1000 * 1000, 0);
		return;
	}
	if (evloop_add(&vm->loop, con.in_fd, EPOLLIN, console_on_input, vm) == 0)
		con.in_polled = true;
}

int console_start(struct vm *vm)
{
	int err;

	if (con.in_fd < 0 || !vm->uart)
		return 0;
	if (isatty(con.in_fd)) {
		err = term_raw_enter(con.in_fd);
		if (err)
			log_msg("cannot put the terminal in raw mode: %s", strerror(-err));
		con.escapes = true;
	}
	con.retry_fd = evloop_add_timer(&vm->loop, console_on_retry, vm);
	if (con.retry_fd < 0)
		return con.retry_fd;
	err = evloop_add(&vm->loop, con.in_fd, EPOLLIN, console_on_input, vm);
	if (err == -EPERM) {
		/* a regular file or /dev/null cannot be polled: no input, as from EOF */
		con.in_fd = -1;
		return 0;
	}
	if (err) {
		log_msg("console: cannot watch stdin: %s", strerror(-err));
		return err;
	}
	con.in_polled = true;
	return 0;
}

void console_stop(struct vm *vm)
{
	(void)vm;
	term_restore();
	if (con.retry_fd >= 0)
		close(con.retry_fd);
	if (con.out_fd > STDERR_FILENO)
		close(con.out_fd);
	con.retry_fd = con.out_fd = -1;
}
