/*
 * The host terminal: raw mode while a guest owns the console, and a restore
 * that runs on every way out (normal exit, die(), fatal signals).
 */
#ifndef RING3_CORE_TERM_H
#define RING3_CORE_TERM_H

#include <stdbool.h>

int term_raw_enter(int fd);
void term_restore(void); /* async-signal-safe; a no-op when not raw */
bool term_is_raw(void);

#endif
