/*
 * A tiny TAP producer for unit tests: ok(), is_int(), done_testing().
 * Output is TAP 13 (`ok N - name`, `not ok N - name`, `# diagnostics`, `1..N`).
 */
#ifndef RING3_TESTS_TAP_H
#define RING3_TESTS_TAP_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

static int tap_n, tap_failed;

__attribute__((format(printf, 2, 3), unused)) static bool ok(bool cond, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d - ", cond ? "" : "not ", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!cond)
		tap_failed++;
	fflush(stdout);
	return cond;
}

#define is_int(got, want, ...)                                                                     \
	({                                                                                         \
		long long g_ = (long long)(got), w_ = (long long)(want);                           \
		bool r_ = ok(g_ == w_, __VA_ARGS__);                                               \
		if (!r_)                                                                           \
			printf("#   got %lld (%#llx), expected %lld (%#llx)  at %s:%d\n", g_,      \
			       (unsigned long long)g_, w_, (unsigned long long)w_, __FILE__,        \
			       __LINE__);                                                          \
		r_;                                                                                \
	})

__attribute__((unused)) static void skip_all(const char *why)
{
	printf("1..0 # SKIP %s\n", why);
}

__attribute__((unused)) static int done_testing(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
