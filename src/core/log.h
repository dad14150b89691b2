/*
 * Messages to stderr, prefixed "ring3: ". Guest-triggered warnings go through
 * log_ratelimited() so a hostile guest cannot flood the host's terminal.
 */
#ifndef RING3_CORE_LOG_H
#define RING3_CORE_LOG_H

#include <stdbool.h>

extern int log_verbose;

void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* true when the message was printed; *budget counts down from its first use */
bool log_ratelimited(int *budget, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
_Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Warn at most 10 times per call site. */
#define log_guest(...)                                                                             \
	do {                                                                                       \
		static int log_budget_ = 10;                                                       \
		log_ratelimited(&log_budget_, __VA_ARGS__);                                        \
	} while (0)

#endif
