/* PLACEHOLDER: replaced by the Linux boot protocol loader. */
#include <errno.h>
#include <stdio.h>

#include "loader.h"

int bzimage_probe(const uint8_t *img, size_t len, char *why, size_t whylen)
{
	snprintf(why, whylen, "no bzImage support yet");
	return -ENOSYS;
}

int bzimage_load(struct vm *vm, const uint8_t *img, size_t len, struct cpu_boot_state *boot)
{
	return -ENOSYS;
}
