/* PLACEHOLDER: replaced by the multiboot loader. */
#include <errno.h>
#include <stdio.h>

#include "loader.h"

int multiboot_probe(const uint8_t *img, size_t len, char *why, size_t whylen)
{
	snprintf(why, whylen, "no multiboot support yet");
	return -ENOSYS;
}

int multiboot_load(struct vm *vm, const uint8_t *img, size_t len, struct cpu_boot_state *boot)
{
	return -ENOSYS;
}
