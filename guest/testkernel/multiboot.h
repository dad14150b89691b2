/*
 * Multiboot v1: the header a loader looks for in the first 8 KiB of the
 * image, and the information structure it leaves at EBX.
 * Follows the Multiboot Specification 0.6.96, §3.1 and §3.3.
 */
#ifndef TK_MULTIBOOT_H
#define TK_MULTIBOOT_H

#define MB_HEADER_MAGIC 0x1badb002
#define MB_HEADER_FLAGS 0x00000003 /* bit 0: page-align modules, bit 1: want memory info */
#define MB_BOOT_MAGIC 0x2badb002   /* in EAX at entry */

#define MB_INFO_MEM 0x001     /* mem_lower/mem_upper are valid */
#define MB_INFO_CMDLINE 0x004 /* cmdline is valid */

#ifndef __ASSEMBLER__
#include <stdint.h>

struct multiboot_info {
	uint32_t flags;
	uint32_t mem_lower; /* KiB below 1 MiB */
	uint32_t mem_upper; /* KiB from 1 MiB up to the first hole */
	uint32_t boot_device;
	uint32_t cmdline; /* physical address of a NUL-terminated string */
			  /* modules, symbols, memory map... follow; we use none of them */
};
#endif

#endif
