/*
 * The guest console on the host: where the UART's output goes (stdout, a
 * file, nowhere), where its input comes from (stdin, with QEMU's Ctrl-A
 * escapes on a terminal), and a watch for the guest kernel's panic line.
 */
#ifndef RING3_CORE_CONSOLE_H
#define RING3_CORE_CONSOLE_H

#include <stddef.h>

struct vm;
struct vm_config;

int console_open(const struct vm_config *cfg); /* before the VM: opens the output */
int console_start(struct vm *vm); /* raw mode and input, just before the vCPUs run */
void console_stop(struct vm *vm);
/* Guest output, from a vCPU thread. */
void console_write(struct vm *vm, const void *buf, size_t len);
/* The guest kernel's panic reason once its console printed one, else NULL. */
const char *console_panic(void);
/* A receiver (the UART) that had no room asks to be fed again. */
void console_rx_kick(struct vm *vm);

#endif
