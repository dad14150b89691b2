/*
 * The command line: `ring3 run [options] [-- COMMAND ...]`, as a table.
 */
#ifndef RING3_CORE_OPTIONS_H
#define RING3_CORE_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "vm.h"

#define RING3_VERSION "0.1.0"

/* 0, or -EINVAL with a one-line message in err; 1 when --help was printed. */
int options_parse_run(int argc, char **argv, struct vm_config *cfg, char *err, size_t errlen);
/* Sizes as QEMU takes them: a bare number is MiB; K, M, G and T suffixes. */
int options_parse_size(const char *s, uint64_t *out);
void options_usage_run(FILE *f);

#endif
