/*
 * Kernel loading: recognise the image (a multiboot v1 kernel or a Linux
 * bzImage), put it, its initrd and command line into guest RAM with the
 * tables its boot protocol promises, and describe the first instruction's CPU
 * state for the engine.
 */
#ifndef RING3_BOOT_LOADER_H
#define RING3_BOOT_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "../cpu/engine.h"

struct vm;
struct vm_config;

/* Reads the image's header: sets cfg->kernel_kind, or -errno with a reason. */
int loader_probe(struct vm_config *cfg, char *why, size_t len);
int loader_load(struct vm *vm, struct cpu_boot_state *boot);

/* A whole file in memory, at most max bytes; NULL with errno set. */
void *loader_read_file(const char *path, size_t max, size_t *len);

int multiboot_probe(const uint8_t *img, size_t len, char *why, size_t whylen);
int multiboot_load(struct vm *vm, const uint8_t *img, size_t len, struct cpu_boot_state *boot);
/* 64 for a bzImage with a 64-bit entry (XLF_KERNEL_64), 32 for i386, or -errno. */
int bzimage_probe(const uint8_t *img, size_t len, char *why, size_t whylen);
int bzimage_load(struct vm *vm, const uint8_t *img, size_t len, struct cpu_boot_state *boot);

#endif
