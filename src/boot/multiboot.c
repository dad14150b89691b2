/*
 * Multiboot v1 loader (the Multiboot Specification 0.6.96, §3): ELF32 kernels
 * and the a.out kludge, the command line, modules (--initrd FILE[,FILE…]),
 * the memory map, and the machine state of §3.2: 32-bit protected mode,
 * paging off, flat segments, EAX = 0x2BADB002, EBX = the information block.
 * It behaves like `qemu-system-i386 -kernel K.elf -append "…"`.
 */
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/log.h"
#include "../core/vm.h"
#include "loader.h"

#define MB_HEADER_MAGIC 0x1BADB002u
#define MB_BOOT_MAGIC 0x2BADB002u
#define MB_SEARCH 8192

/* Header flags (§3.1.2). Bits 0-15 are requirements a loader must meet. */
#define MB_PAGE_ALIGN (1u << 0)
#define MB_MEMORY_INFO (1u << 1)
#define MB_VIDEO_MODE (1u << 2) /* understood; ring3 has no framebuffer to give */
#define MB_AOUT_KLUDGE (1u << 16)
#define MB_KNOWN_REQUIRED (MB_PAGE_ALIGN | MB_MEMORY_INFO | MB_VIDEO_MODE)

/* Information block flags (§3.3) */
#define MBI_MEMORY (1u << 0)
#define MBI_CMDLINE (1u << 2)
#define MBI_MODS (1u << 3)
#define MBI_MMAP (1u << 6)
#define MBI_LOADER_NAME (1u << 9)

/*
 * ring3's boot area in low memory, below the kernel (which the spec's kernels
 * load at 1 MiB or above; one that overlaps this area is refused):
 *
 *   0x07000  GDT: null, flat code 0x08, flat data 0x10
 *   0x07ff0  initial ESP (the OS sets its own; this one is merely valid)
 *   0x08000  multiboot_info
 *   0x08100  memory map
 *   0x08400  module list
 *   0x08800  boot loader name
 *   0x09000  command lines (kernel's, then each module's) up to 0x10000
 */
#define BOOT_AREA_START 0x7000u
#define GDT_ADDR 0x7000u
#define STACK_TOP 0x7ff0u
#define INFO_ADDR 0x8000u
#define MMAP_ADDR 0x8100u
#define MODS_ADDR 0x8400u
#define NAME_ADDR 0x8800u
#define STR_ADDR 0x9000u
#define BOOT_AREA_END 0x10000u
#define MAX_MODULES 32

struct mb_header {
	uint32_t magic, flags, checksum;
	uint32_t header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr;
};

struct mb_info {
	uint32_t flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
	uint32_t syms[4];
	uint32_t mmap_length, mmap_addr, drives_length, drives_addr, config_table;
	uint32_t boot_loader_name, apm_table;
	uint32_t vbe[6];
} __attribute__((packed));

struct mb_mmap_entry {
	uint32_t size; /* of the rest of the entry: 20 */
	uint64_t addr, len;
	uint32_t type; /* 1 available, 2 reserved */
} __attribute__((packed));

struct mb_module {
	uint32_t mod_start, mod_end, string, reserved;
};

static const struct mb_header *mb_find(const uint8_t *img, size_t len, size_t *off)
{
	size_t end = len < MB_SEARCH ? len : MB_SEARCH;

	/* magic, flags, checksum: the a.out fields that follow are optional */
	for (size_t i = 0; i + 12 <= end; i += 4) {
		const struct mb_header *h = (const void *)(img + i);

		if (h->magic == MB_HEADER_MAGIC) {
			*off = i;
			return h;
		}
	}
	return NULL;
}

int multiboot_probe(const uint8_t *img, size_t len, char *why, size_t whylen)
{
	size_t off;
	const struct mb_header *h = mb_find(img, len, &off);

	if (!h) {
		snprintf(why, whylen, "neither a Linux bzImage nor a multiboot kernel "
				      "(no multiboot header in its first 8 KiB)");
		return -EINVAL;
	}
	if (h->magic + h->flags + h->checksum != 0) {
		snprintf(why, whylen, "the multiboot header's checksum is wrong");
		return -EINVAL;
	}
	if (h->flags & 0xffffu & ~MB_KNOWN_REQUIRED) {
		snprintf(why, whylen, "the multiboot header requires features ring3 lacks (flags %#x)",
			 h->flags);
		return -EINVAL;
	}
	if ((h->flags & MB_AOUT_KLUDGE) && len - off < sizeof(*h)) {
		snprintf(why, whylen, "the multiboot header's a.out fields are cut off");
		return -EINVAL;
	}
	if (!(h->flags & MB_AOUT_KLUDGE)) {
		if (len < EI_NIDENT || memcmp(img, ELFMAG, SELFMAG)) {
			snprintf(why, whylen, "a multiboot kernel without the a.out kludge must be ELF");
			return -EINVAL;
		}
		if (img[EI_CLASS] != ELFCLASS32) {
			snprintf(why, whylen, "a multiboot v1 kernel is a 32-bit ELF; this one is 64-bit");
			return -EINVAL;
		}
	}
	return 0;
}

/* Guest RAM for [addr, addr + len), refusing the boot area. */
static uint8_t *mb_dest(struct vm *vm, uint64_t addr, uint64_t len)
{
	if (addr < BOOT_AREA_END && addr + len > BOOT_AREA_START)
		return NULL;
	if (addr + len < addr || addr + len > MEM_4G)
		return NULL;
	return mem_ptr(&vm->mem, addr, len);
}

static int mb_load_elf(struct vm *vm, const uint8_t *img, size_t len, uint32_t *entry,
		       uint64_t *end)
{
	const Elf32_Ehdr *eh = (const void *)img;
	bool entry_mapped = false;

	if (len < sizeof(*eh) || eh->e_ident[EI_DATA] != ELFDATA2LSB || eh->e_machine != EM_386 ||
	    eh->e_type != ET_EXEC) {
		log_msg("multiboot: not a little-endian i386 ELF executable");
		return -EINVAL;
	}
	if (eh->e_phentsize != sizeof(Elf32_Phdr) || eh->e_phnum == 0 ||
	    eh->e_phoff > len || (size_t)eh->e_phnum * sizeof(Elf32_Phdr) > len - eh->e_phoff) {
		log_msg("multiboot: the ELF program headers are malformed");
		return -EINVAL;
	}
	*entry = eh->e_entry;
	*end = 0;
	for (int i = 0; i < eh->e_phnum; i++) {
		const Elf32_Phdr *ph = (const void *)(img + eh->e_phoff + (size_t)i * sizeof(*ph));
		uint8_t *dst;

		if (ph->p_type != PT_LOAD || ph->p_memsz == 0)
			continue;
		if (ph->p_filesz > ph->p_memsz || ph->p_offset > len ||
		    ph->p_filesz > len - ph->p_offset) {
			log_msg("multiboot: ELF segment %d lies outside the file", i);
			return -EINVAL;
		}
		dst = mb_dest(vm, ph->p_paddr, ph->p_memsz);
		if (!dst) {
			log_msg("multiboot: ELF segment %d (%#x+%#x) is outside guest RAM or over "
				"ring3's boot area at 0x7000-0xffff (a larger --mem?)", i, ph->p_paddr,
				ph->p_memsz);
			return -EINVAL;
		}
		memcpy(dst, img + ph->p_offset, ph->p_filesz);
		memset(dst + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
		if ((uint64_t)ph->p_paddr + ph->p_memsz > *end)
			*end = (uint64_t)ph->p_paddr + ph->p_memsz;
		/* A higher-half kernel's entry is virtual: run it at its load address, as GRUB does. */
		if (!entry_mapped && eh->e_entry >= ph->p_vaddr &&
		    eh->e_entry - ph->p_vaddr < ph->p_memsz) {
			*entry = eh->e_entry - ph->p_vaddr + ph->p_paddr;
			entry_mapped = true;
		}
	}
	if (*end == 0) {
		log_msg("multiboot: the ELF has nothing to load");
		return -EINVAL;
	}
	return 0;
}

/* The a.out kludge (§3.1.3): addresses come from the header itself. */
static int mb_load_aout(struct vm *vm, const uint8_t *img, size_t len, const struct mb_header *h,
			size_t hoff, uint32_t *entry, uint64_t *end)
{
	uint64_t file_off, load_len, mem_end;
	uint8_t *dst;

	if (h->load_addr > h->header_addr || h->header_addr - h->load_addr > hoff) {
		log_msg("multiboot: a.out kludge: load_addr is past the header");
		return -EINVAL;
	}
	file_off = hoff - (h->header_addr - h->load_addr);
	load_len = h->load_end_addr ? (uint64_t)h->load_end_addr - h->load_addr
				    : (uint64_t)len - file_off;
	if (h->load_end_addr && h->load_end_addr < h->load_addr) {
		log_msg("multiboot: a.out kludge: load_end_addr is below load_addr");
		return -EINVAL;
	}
	if (load_len > len - file_off) {
		log_msg("multiboot: a.out kludge: the image is shorter than load_end_addr says");
		return -EINVAL;
	}
	mem_end = h->bss_end_addr ? h->bss_end_addr : h->load_addr + load_len;
	if (mem_end < h->load_addr + load_len) {
		log_msg("multiboot: a.out kludge: bss_end_addr is below the loaded image");
		return -EINVAL;
	}
	dst = mb_dest(vm, h->load_addr, mem_end - h->load_addr);
	if (!dst) {
		log_msg("multiboot: a.out kludge: %#x-%#llx is outside guest RAM or over ring3's "
			"boot area at 0x7000-0xffff",
			h->load_addr, (unsigned long long)mem_end);
		return -EINVAL;
	}
	memcpy(dst, img + file_off, load_len);
	memset(dst + load_len, 0, mem_end - h->load_addr - load_len);
	*entry = h->entry_addr;
	*end = mem_end;
	return 0;
}

/* Copy a string into the boot area's string space. Returns its address or 0. */
static uint32_t mb_put_string(struct vm *vm, uint32_t *cursor, const char *s)
{
	size_t n = strlen(s) + 1;
	uint32_t at = *cursor;

	if (n > BOOT_AREA_END - at)
		return 0;
	memcpy(mem_ptr(&vm->mem, at, n), s, n);
	*cursor = at + (uint32_t)n;
	return at;
}

/* Modules are --initrd's comma-separated files, page-aligned after the kernel. */
static int mb_load_modules(struct vm *vm, struct mb_info *mbi, uint64_t kernel_end,
			   uint32_t *strs)
{
	struct mb_module *mods = mem_ptr(&vm->mem, MODS_ADDR, MAX_MODULES * sizeof(*mods));
	uint64_t at = (kernel_end + 0xfff) & ~0xfffull;
	char *list, *save = NULL;
	uint32_t n = 0;

	if (!vm->cfg->initrd)
		return 0;
	list = strdup(vm->cfg->initrd);
	if (!list)
		return -ENOMEM;
	for (char *path = strtok_r(list, ",", &save); path; path = strtok_r(NULL, ",", &save)) {
		size_t len;
		uint8_t *data, *dst;

		if (n == MAX_MODULES) {
			log_msg("multiboot: more than %d modules", MAX_MODULES);
			goto err;
		}
		data = loader_read_file(path, MEM_4G, &len);
		if (!data) {
			log_msg("multiboot: cannot read module %s: %s", path, strerror(errno));
			goto err;
		}
		dst = mb_dest(vm, at, len ? len : 1);
		if (!dst || at + len > MEM_PCI_HOLE_START) {
			log_msg("multiboot: module %s does not fit in guest RAM (try a larger --mem)",
				path);
			free(data);
			goto err;
		}
		memcpy(dst, data, len);
		free(data);
		mods[n] = (struct mb_module){ (uint32_t)at, (uint32_t)(at + len),
					      mb_put_string(vm, strs, path), 0 };
		n++;
		at = (at + len + 0xfff) & ~0xfffull;
	}
	free(list);
	mbi->mods_count = n;
	mbi->mods_addr = MODS_ADDR;
	mbi->flags |= MBI_MODS;
	return 0;
err:
	free(list);
	return -EINVAL;
}

static void mb_build_mmap(struct vm *vm, struct mb_info *mbi)
{
	struct mb_mmap_entry *e = mem_ptr(&vm->mem, MMAP_ADDR, 8 * sizeof(*e));
	const struct mem_region *low = &vm->mem.region[0];
	int n = 0;

	e[n++] = (struct mb_mmap_entry){ 20, 0, 0x9fc00, 1 };
	e[n++] = (struct mb_mmap_entry){ 20, 0x9fc00, 0x400, 2 };
	e[n++] = (struct mb_mmap_entry){ 20, 0xf0000, 0x10000, 2 };
	e[n++] = (struct mb_mmap_entry){ 20, 0x100000, low->size - 0x100000, 1 };
	if (vm->mem.nr_regions > 1)
		e[n++] = (struct mb_mmap_entry){ 20, vm->mem.region[1].gpa, vm->mem.region[1].size, 1 };
	mbi->mmap_addr = MMAP_ADDR;
	mbi->mmap_length = (uint32_t)(n * sizeof(*e));
	mbi->mem_lower = 0x9fc00 / 1024;
	/* KiB of contiguous RAM from 1 MiB */
	mbi->mem_upper = (uint32_t)((low->size - 0x100000) / 1024);
	mbi->flags |= MBI_MEMORY | MBI_MMAP;
}

/* Flat 4 GiB segments, as §3.2 asks of CS and the data segments. */
static void mb_flat(struct cpu_seg *s, uint16_t sel, uint8_t type)
{
	*s = (struct cpu_seg){ .sel = sel, .base = 0, .limit = 0xffffffff, .type = type,
			       .s = true, .present = true, .db = true, .g = true, .dpl = 0 };
}

int multiboot_load(struct vm *vm, const uint8_t *img, size_t len, struct cpu_boot_state *boot)
{
	static const uint64_t gdt[3] = { 0, 0x00cf9b000000ffffull, 0x00cf93000000ffffull };
	const struct mb_header *h;
	struct mb_info *mbi;
	uint32_t entry, strs = STR_ADDR;
	uint64_t end;
	size_t hoff;
	int err;

	if (vm->mem.region[0].size < 2u << 20) {
		log_msg("multiboot: needs at least 2 MiB of RAM");
		return -EINVAL;
	}
	h = mb_find(img, len, &hoff);
	if (!h)
		return -EINVAL;
	if (h->flags & MB_AOUT_KLUDGE)
		err = mb_load_aout(vm, img, len, h, hoff, &entry, &end);
	else
		err = mb_load_elf(vm, img, len, &entry, &end);
	if (err)
		return err;

	mbi = mem_ptr(&vm->mem, INFO_ADDR, sizeof(*mbi));
	memset(mbi, 0, sizeof(*mbi));
	mb_build_mmap(vm, mbi);
	mbi->cmdline = mb_put_string(vm, &strs, vm->cfg->append ? vm->cfg->append : "");
	mbi->boot_loader_name = mb_put_string(vm, &strs, "ring3");
	mbi->flags |= MBI_CMDLINE | MBI_LOADER_NAME;
	if (!mbi->cmdline) {
		log_msg("multiboot: the command line is too long");
		return -E2BIG;
	}
	err = mb_load_modules(vm, mbi, end, &strs);
	if (err)
		return err;

	memcpy(mem_ptr(&vm->mem, GDT_ADDR, sizeof(gdt)), gdt, sizeof(gdt));
	boot->mode = CPU_MODE_PROT32;
	boot->rip = entry;
	boot->rax = MB_BOOT_MAGIC;
	boot->rbx = INFO_ADDR;
	boot->rsp = STACK_TOP;
	boot->cr0 = 0x11; /* PE, ET */
	boot->gdt_base = GDT_ADDR;
	boot->gdt_limit = sizeof(gdt) - 1;
	mb_flat(&boot->cs, 0x08, 0xb); /* execute/read, accessed */
	mb_flat(&boot->ds, 0x10, 0x3); /* read/write, accessed */
	return 0;
}
