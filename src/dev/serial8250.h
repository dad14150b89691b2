/* The 16550A UART's interface to the console (see serial8250.c). */
#ifndef RING3_DEV_SERIAL8250_H
#define RING3_DEV_SERIAL8250_H

#include <stddef.h>

struct serial8250;

/* Bytes from the host for the receiver; returns how many it took (0: full). */
size_t serial8250_receive(struct serial8250 *s, const char *buf, size_t len);

#endif
