/*
 * Raw mode as QEMU's -nographic sets it: no echo, no line editing, no signals
 * from Ctrl-C (the guest gets it), output post-processing kept so "\n" still
 * returns the carriage. The saved termios is restored from atexit and from
 * handlers for the signals that would otherwise leave the terminal raw.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "term.h"

static struct termios saved;
static int raw_fd = -1;
static volatile sig_atomic_t raw;

bool term_is_raw(void)
{
	return raw;
}

void term_restore(void)
{
	if (!raw)
		return;
	raw = 0;
	tcsetattr(raw_fd, TCSAFLUSH, &saved);
}

static void term_on_signal(int sig)
{
	term_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

int term_raw_enter(int fd)
{
	static const int sigs[] = { SIGTERM, SIGHUP, SIGQUIT, SIGINT, SIGABRT, SIGSEGV, SIGBUS };
	struct termios t;

	if (!isatty(fd))
		return -ENOTTY;
	if (tcgetattr(fd, &saved) < 0)
		return -errno;
	t = saved;
	t.c_iflag &= ~(unsigned)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
	t.c_lflag &= ~(unsigned)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	t.c_cflag &= ~(unsigned)(CSIZE | PARENB);
	t.c_cflag |= CS8;
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	raw_fd = fd;
	atexit(term_restore);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = term_on_signal;
		sigaction(sigs[i], &sa, NULL);
	}
	if (tcsetattr(fd, TCSAFLUSH, &t) < 0)
		return -errno;
	raw = 1;
	return 0;
}
