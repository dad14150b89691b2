/*
 * The sandbox child, seen from the monitor: spawn it (it runs the guest in
 * its runtime, runtime.h), learn why it died, kill it. sandbox.c.
 */
#ifndef RING3_CPU_BT_SANDBOX_H
#define RING3_CPU_BT_SANDBOX_H

#include <stddef.h>
#include <sys/types.h>

struct vm;
struct bt_shared;

/*
 * Fork a child for role BT_K (posts BT_EXIT_READY, or FAULT, when set up) or
 * BT_U (sets u_ready, then waits for the vCPU). 0 or -errno.
 */
int sandbox_spawn(struct vm *vm, struct bt_shared *sh, unsigned role, pid_t *pid);
/* 1 and a one-line reason if the child has ended (and is reaped), else 0. */
int sandbox_reap(pid_t pid, struct bt_shared *sh, char *msg, size_t len);
void sandbox_kill(pid_t pid);

#endif
