/*
 * Messages to stderr. The console may be in raw mode, so every line ends in
 * "\r\n" to keep the terminal readable while a guest runs.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "term.h"

int log_verbose;

static void vlog(const char *fmt, va_list ap)
{
	char buf[512];
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);

	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	while (n > 0 && buf[n - 1] == '\n')
		n--;
	fprintf(stderr, "ring3: %.*s%s", n, buf, term_is_raw() ? "\r\n" : "\n");
}

void log_msg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

void log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!log_verbose)
		return;
	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

bool log_ratelimited(int *budget, const char *fmt, ...)
{
	va_list ap;

	if (__atomic_fetch_sub(budget, 1, __ATOMIC_RELAXED) <= 0)
		return false;
	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
	if (__atomic_load_n(budget, __ATOMIC_RELAXED) == 0)
		log_msg("(further messages of this kind suppressed)");
	return true;
}

void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
	term_restore();
	exit(1);
}
