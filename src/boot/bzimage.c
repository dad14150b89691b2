/*
 * Linux's x86 boot protocol (Documentation/arch/x86/boot.rst, zero-page.rst):
 * a bzImage's protected-mode kernel at 1 MiB, the zero page (struct
 * boot_params) with the setup header, an e820 map, the command line and the
 * initrd, entered by the 64-bit protocol (long mode, identity page tables) or,
 * for an i386 kernel, the 32-bit protocol (flat protected mode, paging off).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/vm.h"
#include "acpi.h"
#include "loader.h"

/* The setup header, as offsets into the image and into boot_params (boot.rst). */
#define HDR_SETUP_SECTS 0x1f1
#define HDR_SYSSIZE 0x1f4
#define HDR_BOOT_FLAG 0x1fe
#define HDR_JUMP 0x200 /* the header ends at 0x202 + the byte at 0x201 */
#define HDR_MAGIC 0x202
#define HDR_VERSION 0x206
#define HDR_TYPE_OF_LOADER 0x210
#define HDR_LOADFLAGS 0x211
#define HDR_RAMDISK_IMAGE 0x218
#define HDR_RAMDISK_SIZE 0x21c
#define HDR_CMD_LINE_PTR 0x228
#define HDR_INITRD_ADDR_MAX 0x22c
#define HDR_XLOADFLAGS 0x236
#define HDR_CMDLINE_SIZE 0x238
#define HDR_PREF_ADDRESS 0x258
#define HDR_INIT_SIZE 0x260
#define HDR_MAX_END 0x290 /* the zero page's next field after the header */

#define LOADED_HIGH (1u << 0)
#define XLF_KERNEL_64 (1u << 0)
#define LOADER_UNDEFINED 0xff

/* The rest of the zero page (zero-page.rst) */
#define BP_ACPI_RSDP_ADDR 0x070
#define BP_E820_ENTRIES 0x1e8
#define BP_E820_TABLE 0x2d0
#define E820_MAX 128

#define E820_RAM 1
#define E820_RESERVED 2
#define E820_ACPI 3

/*
 * ring3's boot area in low memory (below 1 MiB, where the kernel is not):
 *
 *   0x01000  GDT: null, null, __BOOT_CS 0x10, __BOOT_DS 0x18
 *   0x07000  boot_params, the zero page
 *   0x08ff0  initial stack pointer (the kernel sets its own at once)
 *   0x09000  PML4, 0x0a000 PDPT, 0x0b000-0x0efff four page directories:
 *            2 MiB pages identity-mapping 0-4 GiB
 *   0x20000  the command line
 *   0x9fc00  EBDA (reserved), 0xa0000 VGA hole, 0xe0000 ACPI tables, BIOS
 *   0x100000 the protected-mode kernel
 */
#define GDT_ADDR 0x1000u
#define ZERO_PAGE 0x7000u
#define STACK_TOP 0x8ff0u
#define PML4_ADDR 0x9000u
#define PDPT_ADDR 0xa000u
#define PD_ADDR 0xb000u
#define CMDLINE_ADDR 0x20000u
#define CMDLINE_MAX 0x10000u
#define EBDA_START 0x9fc00u
#define BIOS_END 0x100000u
#define KERNEL_ADDR 0x100000u

#define PTE_P 0x1ull
#define PTE_RW 0x2ull
#define PTE_PS 0x80ull

static uint16_t get16(const uint8_t *p, size_t off)
{
	uint16_t v;

	memcpy(&v, p + off, 2);
	return v;
}

static uint32_t get32(const uint8_t *p, size_t off)
{
	uint32_t v;

	memcpy(&v, p + off, 4);
	return v;
}

static void put32(uint8_t *p, size_t off, uint32_t v)
{
	memcpy(p + off, &v, 4);
}

static void put64(uint8_t *p, size_t off, uint64_t v)
{
	memcpy(p + off, &v, 8);
}

/* Where the protected-mode kernel starts in the file: after the real-mode setup sectors. */
static size_t setup_size(const uint8_t *img)
{
	unsigned sects = img[HDR_SETUP_SECTS];

	return ((size_t)(sects ? sects : 4) + 1) * 512;
}

int bzimage_probe(const uint8_t *img, size_t len, char *why, size_t whylen)
{
	uint16_t version;
	size_t setup;

	if (len < HDR_MAX_END || memcmp(img + HDR_MAGIC, "HdrS", 4)) {
		snprintf(why, whylen, "no Linux boot header (\"HdrS\" at 0x202)");
		return -ENOEXEC;
	}
	version = get16(img, HDR_VERSION);
	if (version < 0x206) {
		snprintf(why, whylen, "Linux boot protocol %u.%02u is too old (ring3 needs 2.06+)",
			 version >> 8, version & 0xff);
		return -ENOEXEC;
	}
	if (get16(img, HDR_BOOT_FLAG) != 0xaa55 || !(img[HDR_LOADFLAGS] & LOADED_HIGH)) {
		snprintf(why, whylen, "not a bzImage (zImage or damaged header)");
		return -ENOEXEC;
	}
	setup = setup_size(img);
	if (setup >= len || (uint64_t)get32(img, HDR_SYSSIZE) * 16 > len - setup) {
		snprintf(why, whylen, "the bzImage is truncated (%zu bytes)", len);
		return -ENOEXEC;
	}
	/*
	 * Without XLF_KERNEL_64 (protocol 2.12+) the 32-bit entry is the only
	 * one promised; a 64-bit kernel enters long mode from it by itself.
	 */
	if (version >= 0x20c && (get16(img, HDR_XLOADFLAGS) & XLF_KERNEL_64))
		return 64;
	return 32;
}

struct e820 {
	uint8_t *table;
	unsigned n;
};

static void e820_add(struct e820 *e, uint64_t addr, uint64_t size, uint32_t type)
{
	uint8_t *p = e->table + e->n * 20;

	if (!size || e->n >= E820_MAX)
		return;
	put64(p, 0, addr);
	put64(p, 8, size);
	put32(p, 16, type);
	e->n++;
}

/*
 * The PC's map: low RAM up to the EBDA, the BIOS area (with the ACPI tables
 * marked as ACPI data), RAM from 1 MiB to the PCI hole, and RAM above 4 GiB.
 * The hole itself (IOAPIC, LAPIC) is simply not RAM.
 */
static void e820_build(struct vm *vm, uint8_t *zp)
{
	struct e820 e = { .table = zp + BP_E820_TABLE };
	const struct guest_mem *m = &vm->mem;

	e820_add(&e, 0, EBDA_START, E820_RAM);
	e820_add(&e, EBDA_START, 0xa0000 - EBDA_START, E820_RESERVED);
	e820_add(&e, ACPI_AREA_START, ACPI_AREA_SIZE, E820_ACPI);
	e820_add(&e, ACPI_AREA_START + ACPI_AREA_SIZE, BIOS_END - ACPI_AREA_START - ACPI_AREA_SIZE,
		 E820_RESERVED);
	for (int i = 0; i < m->nr_regions; i++) {
		uint64_t start = m->region[i].gpa, end = start + m->region[i].size;

		if (start < BIOS_END)
			start = BIOS_END;
		if (end > start)
			e820_add(&e, start, end - start, E820_RAM);
	}
	zp[BP_E820_ENTRIES] = (uint8_t)e.n;
}

/* Identity map of 0-4 GiB with 2 MiB pages: enough for every address boot.rst names. */
static int page_tables(struct vm *vm)
{
	uint64_t *pml4 = mem_ptr(&vm->mem, PML4_ADDR, 4096);
	uint64_t *pdpt = mem_ptr(&vm->mem, PDPT_ADDR, 4096);
	uint64_t *pd = mem_ptr(&vm->mem, PD_ADDR, 4 * 4096);

	if (!pml4 || !pdpt || !pd)
		return -ENOMEM;
	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = PDPT_ADDR | PTE_P | PTE_RW;
	for (uint64_t i = 0; i < 4; i++)
		pdpt[i] = (PD_ADDR + i * 4096) | PTE_P | PTE_RW;
	for (uint64_t i = 0; i < 4 * 512; i++)
		pd[i] = (i << 21) | PTE_P | PTE_RW | PTE_PS;
	return 0;
}

static void flat_seg(struct cpu_seg *s, uint16_t sel, uint8_t type, bool long_mode)
{
	*s = (struct cpu_seg){ .sel = sel, .base = 0, .limit = 0xffffffff, .type = type,
			       .s = true, .present = true, .g = true };
	s->l = long_mode;
	s->db = !long_mode;
}

/* GDT entries 2 and 3 are __BOOT_CS and __BOOT_DS; a 64-bit CS has L set, D clear. */
static int gdt_build(struct vm *vm, bool long_mode, struct cpu_boot_state *boot)
{
	uint64_t *gdt = mem_ptr(&vm->mem, GDT_ADDR, 4 * 8);

	if (!gdt)
		return -ENOMEM;
	gdt[0] = 0;
	gdt[1] = 0;
	gdt[2] = long_mode ? 0x00af9b000000ffffull : 0x00cf9b000000ffffull;
	gdt[3] = 0x00cf93000000ffffull;
	boot->gdt_base = GDT_ADDR;
	boot->gdt_limit = 4 * 8 - 1;
	flat_seg(&boot->cs, 0x10, 0xb, long_mode); /* execute/read, accessed */
	flat_seg(&boot->ds, 0x18, 0x3, false);	   /* read/write, accessed */
	return 0;
}

/*
 * The initrd goes as high as the kernel allows, above the kernel's own
 * footprint; it is read straight into guest RAM, never through the heap.
 */
static int initrd_load(struct vm *vm, uint8_t *zp, uint64_t kernel_end)
{
	uint64_t low_top = vm->mem.region[0].size, max, addr, room;
	const char *path = vm->cfg->initrd;
	struct stat st;
	uint8_t *dst;
	size_t done = 0;
	int fd, err;

	max = (uint64_t)get32(zp, HDR_INITRD_ADDR_MAX) + 1; /* "highest safe address" + 1 */
	if (max > low_top)
		max = low_top;
	room = max > kernel_end ? max - kernel_end : 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		log_msg("cannot read initrd %s: %s", path, strerror(errno));
		return err;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_msg("initrd %s is not a regular file", path);
		close(fd);
		return -EINVAL;
	}
	if ((uint64_t)st.st_size > room || ((max - (uint64_t)st.st_size) & ~0xfffull) < kernel_end) {
		log_msg("initrd %s (%llu MiB) is too big: %llu MiB fit between the kernel and %#llx "
			"with --mem %llu MiB",
			path, (unsigned long long)(st.st_size >> 20), (unsigned long long)(room >> 20),
			(unsigned long long)max, (unsigned long long)(vm->cfg->mem_size >> 20));
		close(fd);
		return -EFBIG;
	}
	addr = (max - (uint64_t)st.st_size) & ~0xfffull;
	dst = mem_ptr(&vm->mem, addr, (uint64_t)st.st_size);
	while (dst && done < (size_t)st.st_size) {
		ssize_t n = pread(fd, dst + done, (size_t)st.st_size - done, (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_msg("cannot read initrd %s: %s", path, n ? strerror(errno) : "file shrank");
			close(fd);
			return n ? -errno : -EIO;
		}
		done += (size_t)n;
	}
	close(fd);
	if (!dst)
		return -ENOMEM;
	put32(zp, HDR_RAMDISK_IMAGE, (uint32_t)addr);
	put32(zp, HDR_RAMDISK_SIZE, (uint32_t)st.st_size);
	return 0;
}

static int cmdline_load(struct vm *vm, uint8_t *zp)
{
	const char *cmd = vm->cfg->append ? vm->cfg->append : "";
	size_t len = strlen(cmd), max = get32(zp, HDR_CMDLINE_SIZE);
	char *dst = mem_ptr(&vm->mem, CMDLINE_ADDR, CMDLINE_MAX);

	if (max > CMDLINE_MAX - 1)
		max = CMDLINE_MAX - 1;
	if (len > max) {
		log_msg("the kernel command line is %zu bytes; this kernel takes at most %zu", len,
			max);
		return -E2BIG;
	}
	if (!dst)
		return -ENOMEM;
	memcpy(dst, cmd, len + 1);
	put32(zp, HDR_CMD_LINE_PTR, CMDLINE_ADDR);
	return 0;
}

int bzimage_load(struct vm *vm, const uint8_t *img, size_t len, struct cpu_boot_state *boot)
{
	int bits = bzimage_probe(img, len, (char[160]){ 0 }, 160);
	uint64_t low_top = vm->mem.region[0].size, kernel_end, rsdp;
	size_t setup, hdr_end, kernel_len;
	uint64_t pref, need;
	uint8_t *zp, *dst;
	int err;

	if (bits < 0)
		return bits;
	setup = setup_size(img);
	kernel_len = len - setup;
	pref = get32(img, HDR_PREF_ADDRESS);
	need = get32(img, HDR_INIT_SIZE);
	/* The kernel decompresses itself to at least pref_address and needs init_size there. */
	kernel_end = (pref > KERNEL_ADDR ? pref : KERNEL_ADDR) + need;
	if (kernel_end < KERNEL_ADDR + kernel_len)
		kernel_end = KERNEL_ADDR + kernel_len;
	kernel_end = (kernel_end + 0xfff) & ~0xfffull;
	if (kernel_end > low_top) {
		log_msg("--mem %llu MiB is too small for this kernel: it needs %llu MiB",
			(unsigned long long)(vm->cfg->mem_size >> 20),
			(unsigned long long)((kernel_end + (1 << 20) - 1) >> 20));
		return -ENOMEM;
	}
	dst = mem_ptr(&vm->mem, KERNEL_ADDR, kernel_len);
	zp = mem_ptr(&vm->mem, ZERO_PAGE, 4096);
	if (!dst || !zp)
		return -ENOMEM;
	memcpy(dst, img + setup, kernel_len);

	/* boot_params: zero, then the setup header from 0x1f1 to its end (boot.rst §"32-bit boot protocol") */
	memset(zp, 0, 4096);
	hdr_end = 0x202 + (size_t)img[HDR_JUMP + 1];
	if (hdr_end > HDR_MAX_END)
		hdr_end = HDR_MAX_END;
	memcpy(zp + HDR_SETUP_SECTS, img + HDR_SETUP_SECTS, hdr_end - HDR_SETUP_SECTS);
	zp[HDR_TYPE_OF_LOADER] = LOADER_UNDEFINED;

	err = cmdline_load(vm, zp);
	if (err)
		return err;
	if (vm->cfg->initrd) {
		err = initrd_load(vm, zp, kernel_end);
		if (err)
			return err;
	}
	err = acpi_build(vm, &rsdp);
	if (err)
		return err;
	put64(zp, BP_ACPI_RSDP_ADDR, rsdp);
	e820_build(vm, zp);

	err = gdt_build(vm, bits == 64, boot);
	if (err)
		return err;
	boot->rsi = ZERO_PAGE;
	boot->rsp = STACK_TOP;
	boot->rbx = boot->rbp = boot->rdi = 0; /* boot.rst: "%ebp, %edi and %ebx must be zero" */
	if (bits == 64) {
		err = page_tables(vm);
		if (err)
			return err;
		boot->mode = CPU_MODE_LONG64;
		boot->rip = KERNEL_ADDR + 0x200; /* the 64-bit entry, 0x200 past the 32-bit one */
		boot->cr0 = 0x80000011; /* PG, ET, PE */
		boot->cr3 = PML4_ADDR;
		boot->cr4 = 0x20; /* PAE */
		boot->efer = 0x500; /* LMA, LME */
	} else {
		boot->mode = CPU_MODE_PROT32;
		boot->rip = KERNEL_ADDR;
		boot->cr0 = 0x11; /* ET, PE: paging off */
	}
	log_debug("bzImage %d-bit, protocol %u.%02u, kernel %zu bytes at %#x, cmdline %s",
		  bits, get16(img, HDR_VERSION) >> 8, get16(img, HDR_VERSION) & 0xff, kernel_len,
		  KERNEL_ADDR, vm->cfg->append ? vm->cfg->append : "");
	return 0;
}
