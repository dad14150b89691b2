/*
 * The multiboot loader against well-formed and hostile images: a minimal
 * ELF32 kernel built in memory, then truncated, corrupted and misplaced.
 */
#include <elf.h>
#include <string.h>

#include "boot/loader.h"
#include "core/vm.h"
#include "tap.h"

#define KADDR 0x100000u

struct image {
	Elf32_Ehdr eh;
	Elf32_Phdr ph;
	uint32_t mb[3];
	uint8_t code[16];
} __attribute__((packed));

static void make_image(struct image *im)
{
	memset(im, 0, sizeof(*im));
	memcpy(im->eh.e_ident, ELFMAG, SELFMAG);
	im->eh.e_ident[EI_CLASS] = ELFCLASS32;
	im->eh.e_ident[EI_DATA] = ELFDATA2LSB;
	im->eh.e_type = ET_EXEC;
	im->eh.e_machine = EM_386;
	im->eh.e_phoff = offsetof(struct image, ph);
	im->eh.e_phentsize = sizeof(Elf32_Phdr);
	im->eh.e_phnum = 1;
	im->eh.e_entry = 0xC0000000u + KADDR + offsetof(struct image, code); /* higher half */
	im->ph.p_type = PT_LOAD;
	im->ph.p_offset = 0;
	im->ph.p_vaddr = 0xC0000000u + KADDR;
	im->ph.p_paddr = KADDR;
	im->ph.p_filesz = sizeof(*im);
	im->ph.p_memsz = sizeof(*im) + 4096; /* a bss */
	im->mb[0] = 0x1BADB002u;
	im->mb[1] = 3; /* page align, memory info */
	im->mb[2] = -(im->mb[0] + im->mb[1]);
	memset(im->code, 0x90, sizeof(im->code));
}

static int load(struct vm *vm, struct vm_config *cfg, const void *img, size_t len,
		struct cpu_boot_state *boot)
{
	char why[200];

	if (multiboot_probe(img, len, why, sizeof(why)))
		return -1;
	vm->cfg = cfg;
	return multiboot_load(vm, img, len, boot);
}

int main(void)
{
	static struct vm vm;
	struct vm_config cfg = { .append = "bench=all iters=10" };
	struct cpu_boot_state boot;
	struct image im;
	char why[200];

	if (mem_init(&vm.mem, 32u << 20)) {
		skip_all("cannot allocate guest RAM");
		return 0;
	}

	make_image(&im);
	is_int(multiboot_probe((void *)&im, sizeof(im), why, sizeof(why)), 0, "probe accepts a good ELF");
	is_int(load(&vm, &cfg, &im, sizeof(im), &boot), 0, "a good ELF loads");
	is_int(boot.rax, 0x2BADB002u, "EAX holds the boot magic");
	is_int(boot.rip, KADDR + offsetof(struct image, code), "a higher-half entry runs at its load address");
	is_int(boot.mode, CPU_MODE_PROT32, "32-bit protected mode");
	is_int(boot.cr0 & 0x80000001u, 1, "PE on, paging off");
	ok(!memcmp(mem_ptr(&vm.mem, KADDR, sizeof(im)), &im, sizeof(im)), "the segment is in RAM");
	{
		uint32_t *info = mem_ptr(&vm.mem, boot.rbx, 88);
		const char *cmd = mem_ptr(&vm.mem, info[4], 32);

		ok((info[0] & 0x245) == 0x245, "info flags: memory, cmdline, mmap, loader name");
		is_int(info[2], 31 * 1024, "mem_upper is RAM above 1 MiB in KiB");
		ok(!strcmp(cmd, "bench=all iters=10"), "the command line is passed");
		is_int(info[11], 4 * 24, "four memory map entries");
	}

	make_image(&im);
	im.mb[2] ^= 1;
	ok(multiboot_probe((void *)&im, sizeof(im), why, sizeof(why)) < 0 && strstr(why, "checksum"),
	   "a bad checksum is refused: %s", why);

	make_image(&im);
	im.mb[1] |= 1u << 5;
	im.mb[2] = -(im.mb[0] + im.mb[1]);
	ok(multiboot_probe((void *)&im, sizeof(im), why, sizeof(why)) < 0,
	   "an unknown required feature is refused: %s", why);

	make_image(&im);
	ok(multiboot_probe((void *)&im, 16, why, sizeof(why)) < 0, "a truncated image is refused");

	make_image(&im);
	im.eh.e_phnum = 0xffff;
	ok(load(&vm, &cfg, &im, sizeof(im), &boot) < 0, "program headers past the file are refused");

	make_image(&im);
	im.ph.p_filesz = 0x10000000;
	ok(load(&vm, &cfg, &im, sizeof(im), &boot) < 0, "a segment past the file is refused");

	make_image(&im);
	im.ph.p_paddr = 0xfffff000u;
	ok(load(&vm, &cfg, &im, sizeof(im), &boot) < 0, "a segment that wraps 4 GiB is refused");

	make_image(&im);
	im.ph.p_paddr = 64u << 20;
	ok(load(&vm, &cfg, &im, sizeof(im), &boot) < 0, "a segment beyond RAM is refused");

	make_image(&im);
	im.ph.p_paddr = 0x8000;
	ok(load(&vm, &cfg, &im, sizeof(im), &boot) < 0, "a segment over the boot area is refused");

	make_image(&im);
	im.eh.e_ident[EI_CLASS] = ELFCLASS64;
	ok(multiboot_probe((void *)&im, sizeof(im), why, sizeof(why)) < 0 && strstr(why, "64-bit"),
	   "a 64-bit ELF is refused: %s", why);

	{
		/* The a.out kludge: header fields give the layout. */
		uint32_t aout[16] = { 0x1BADB002u, 1u << 16, 0, KADDR, KADDR, 0, KADDR + 0x2000,
				      KADDR + 32 };
		aout[2] = -(aout[0] + aout[1]);
		is_int(load(&vm, &cfg, aout, sizeof(aout), &boot), 0, "an a.out-kludge image loads");
		is_int(boot.rip, KADDR + 32, "its entry comes from the header");
		aout[4] = KADDR + 8; /* load_addr past the header */
		ok(load(&vm, &cfg, aout, sizeof(aout), &boot) < 0, "a load_addr past the header is refused");
	}

	{
		uint8_t junk[8192];

		memset(junk, 0xa5, sizeof(junk));
		ok(multiboot_probe(junk, sizeof(junk), why, sizeof(why)) < 0, "garbage is refused: %s",
		   why);
	}
	mem_destroy(&vm.mem);
	return done_testing();
}
