/*
 * --stats: what the VM did and what it cost, printed at exit (and on C-a s).
 */
#ifndef RING3_CORE_STATS_H
#define RING3_CORE_STATS_H

#include <stdio.h>

struct vm;

void stats_print(struct vm *vm, FILE *f);

#endif
