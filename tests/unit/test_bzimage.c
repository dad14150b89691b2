/*
 * The Linux boot protocol loader and the ACPI tables, against a synthetic
 * bzImage: the zero page, e820 map, command line, initrd placement, page
 * tables, entry state, and checksummed ACPI tables; then hostile headers.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "boot/acpi.h"
#include "boot/loader.h"
#include "core/vm.h"
#include "tap.h"

#define IMG_LEN (64 * 1024)

static uint8_t img[IMG_LEN];

static void put16(size_t off, uint16_t v) { memcpy(img + off, &v, 2); }
static void put32(size_t off, uint32_t v) { memcpy(img + off, &v, 4); }
static void put64(size_t off, uint64_t v) { memcpy(img + off, &v, 8); }
static uint32_t zp32(const uint8_t *zp, size_t off) { uint32_t v; memcpy(&v, zp + off, 4); return v; }
static uint64_t zp64(const uint8_t *zp, size_t off) { uint64_t v; memcpy(&v, zp + off, 8); return v; }

/* A 64 KiB "kernel": 1 setup sector + boot sector, protected-mode part after. */
static void make_image(uint16_t version, uint16_t xloadflags)
{
	memset(img, 0, sizeof(img));
	img[0x1f1] = 1; /* setup_sects: the protected-mode part starts at 2 * 512 */
	put32(0x1f4, (IMG_LEN - 1024) / 16);
	put16(0x1fe, 0xaa55);
	img[0x200] = 0xeb;
	img[0x201] = 0x6a; /* header ends at 0x26c */
	memcpy(img + 0x202, "HdrS", 4);
	put16(0x206, version);
	img[0x211] = 1; /* LOADED_HIGH */
	put32(0x22c, 0x7fffffff);
	put32(0x230, 0x200000);
	img[0x234] = 1;
	put16(0x236, xloadflags);
	put32(0x238, 2047);
	put64(0x258, 0x1000000);
	put32(0x260, 0x800000); /* init_size: 8 MiB */
	for (size_t i = 1024; i < IMG_LEN; i++)
		img[i] = (uint8_t)i;
}

static uint8_t sum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t s = 0;

	while (len--)
		s += *b++;
	return s;
}

/* Walks the loader's page tables: the physical address gva maps to, or -1. */
static uint64_t walk(struct vm *vm, uint64_t cr3, uint64_t gva)
{
	uint64_t *pml4 = mem_ptr(&vm->mem, cr3, 4096), e;

	e = pml4[(gva >> 39) & 511];
	if (!(e & 1))
		return (uint64_t)-1;
	e = ((uint64_t *)mem_ptr(&vm->mem, e & ~0xfffull, 4096))[(gva >> 30) & 511];
	if (!(e & 1))
		return (uint64_t)-1;
	e = ((uint64_t *)mem_ptr(&vm->mem, e & ~0xfffull, 4096))[(gva >> 21) & 511];
	if (!(e & 1) || !(e & 0x80))
		return (uint64_t)-1;
	return (e & ~0x1fffffull) | (gva & 0x1fffff);
}

static void check_acpi(struct vm *vm, uint64_t rsdp_gpa, int cpus)
{
	const uint8_t *rsdp = mem_ptr(&vm->mem, rsdp_gpa, 36), *xsdt, *madt = NULL, *fadt = NULL;
	uint64_t xsdt_gpa, e;
	uint32_t len;

	ok(rsdp && !memcmp(rsdp, "RSD PTR ", 8), "RSDP signature");
	ok(rsdp_gpa >= 0xe0000 && rsdp_gpa < 0x100000 && !(rsdp_gpa & 15),
	   "the RSDP is where the BIOS-area search finds it");
	is_int(sum(rsdp, 20), 0, "RSDP checksum");
	is_int(sum(rsdp, 36), 0, "RSDP extended checksum");
	memcpy(&xsdt_gpa, rsdp + 24, 8);
	xsdt = mem_ptr(&vm->mem, xsdt_gpa, 36);
	memcpy(&len, xsdt + 4, 4);
	ok(!memcmp(xsdt, "XSDT", 4) && sum(xsdt, len) == 0, "XSDT signature and checksum");
	for (uint32_t off = 36; off + 8 <= len; off += 8) {
		const uint8_t *t;
		uint32_t tlen;

		memcpy(&e, xsdt + off, 8);
		t = mem_ptr(&vm->mem, e, 36);
		memcpy(&tlen, t + 4, 4);
		ok(sum(t, tlen) == 0, "%.4s checksum", (const char *)t);
		if (!memcmp(t, "FACP", 4))
			fadt = t;
		if (!memcmp(t, "APIC", 4))
			madt = t;
	}
	ok(fadt != NULL, "the XSDT lists a FADT");
	ok(madt != NULL, "the XSDT lists a MADT");
	if (fadt) {
		uint64_t dsdt_gpa;
		const uint8_t *dsdt;
		uint32_t dlen;

		is_int(zp32(fadt, 56), 0x600, "FADT PM1a_EVT_BLK");
		is_int(zp32(fadt, 64), 0x604, "FADT PM1a_CNT_BLK");
		is_int(zp32(fadt, 76), 0x608, "FADT PM_TMR_BLK");
		is_int(fadt[46], 9, "FADT SCI_INT");
		is_int(zp32(fadt, 112) & (1u << 20), 0, "not HW_REDUCED");
		ok(zp32(fadt, 112) & (1u << 8), "TMR_VAL_EXT");
		ok(zp32(fadt, 112) & (1u << 10), "RESET_REG_SUP");
		is_int(fadt[116], 1, "RESET_REG is in system I/O space");
		is_int(zp64(fadt, 120), 0xcf9, "RESET_REG address");
		is_int(fadt[128], 6, "RESET_VALUE");
		dsdt_gpa = zp64(fadt, 140);
		dsdt = mem_ptr(&vm->mem, dsdt_gpa, 36);
		memcpy(&dlen, dsdt + 4, 4);
		ok(!memcmp(dsdt, "DSDT", 4) && sum(dsdt, dlen) == 0, "DSDT signature and checksum");
		ok(dlen > 36 && memmem(dsdt + 36, dlen - 36, "\\_S5_\x12\x0a\x04\x0a\x05\x0a\x05", 12),
		   "the DSDT defines \\_S5 as Package {5, 5, ...}");
	}
	if (madt) {
		uint32_t mlen;
		int lapics = 0, ioapics = 0, iso0 = 0;

		memcpy(&mlen, madt + 4, 4);
		is_int(zp32(madt, 36), 0xfee00000u, "MADT local APIC address");
		for (uint32_t off = 44; off + 2 <= mlen && madt[off + 1] >= 2; off += madt[off + 1]) {
			if (madt[off] == 0 && madt[off + 3] == lapics && (madt[off + 4] & 1))
				lapics++;
			if (madt[off] == 1 && zp32(madt, off + 4) == 0xfec00000u)
				ioapics++;
			if (madt[off] == 2 && madt[off + 3] == 0 && zp32(madt, off + 4) == 2)
				iso0++;
		}
		is_int(lapics, cpus, "one enabled local APIC per vCPU, APIC IDs 0..n-1");
		is_int(ioapics, 1, "one IOAPIC at 0xfec00000");
		is_int(iso0, 1, "IRQ 0 is overridden to GSI 2");
	}
}

static void check_e820(struct vm *vm, const uint8_t *zp, uint64_t mem)
{
	unsigned n = zp[0x1e8];
	uint64_t ram = 0, prev_end = 0;
	bool sorted = true, kernel_ram = false, hole_free = true;

	ok(n >= 4 && n <= 128, "e820 has %u entries", n);
	for (unsigned i = 0; i < n; i++) {
		uint64_t a = zp64(zp, 0x2d0 + i * 20), s = zp64(zp, 0x2d0 + i * 20 + 8);
		uint32_t type = zp32(zp, 0x2d0 + i * 20 + 16);

		if (a < prev_end)
			sorted = false;
		prev_end = a + s;
		if (type == 1) {
			ram += s;
			if (a <= 0x100000 && a + s >= 0x100000 + 0x800000)
				kernel_ram = true;
			if (a < 0x100000000ull && a + s > 0xc0000000ull)
				hole_free = false;
			ok(mem_ptr(&vm->mem, a, s) != NULL, "e820 RAM [%#llx, +%#llx) is guest RAM",
			   (unsigned long long)a, (unsigned long long)s);
		}
	}
	ok(sorted, "e820 entries are sorted and do not overlap");
	ok(kernel_ram, "RAM from 1 MiB covers the kernel");
	ok(hole_free, "no RAM in the PCI hole");
	ok(ram <= mem && ram >= mem - 0x60400, "e820 RAM %#llx adds up to guest RAM minus the BIOS area",
	   (unsigned long long)ram);
}

int main(void)
{
	static struct vm vm;
	struct vm_config cfg = { .append = "console=ttyS0 quiet", .cpus = 4 };
	struct cpu_boot_state boot;
	char why[200], initrd[] = "/tmp/ring3-test-initrd-XXXXXX";
	uint8_t *zp;
	int fd;

	if (mem_init(&vm.mem, (3ull << 30) + (512ull << 20))) {
		skip_all("cannot allocate guest RAM");
		return 0;
	}
	vm.cfg = &cfg;
	vm.engine = &kvm_engine;
	vm.nr_vcpus = cfg.cpus;
	cfg.mem_size = vm.mem.size;

	/* probe */
	make_image(0x20f, 1);
	is_int(bzimage_probe(img, IMG_LEN, why, sizeof(why)), 64, "XLF_KERNEL_64: a 64-bit entry");
	make_image(0x20f, 0);
	is_int(bzimage_probe(img, IMG_LEN, why, sizeof(why)), 32, "no XLF_KERNEL_64: 32-bit protocol");
	make_image(0x20b, 1);
	is_int(bzimage_probe(img, IMG_LEN, why, sizeof(why)), 32, "protocol 2.11 has no xloadflags: 32-bit");
	make_image(0x205, 1);
	ok(bzimage_probe(img, IMG_LEN, why, sizeof(why)) < 0 && strstr(why, "too old"),
	   "protocol 2.05 is refused: %s", why);
	make_image(0x20f, 1);
	img[0x202] = 'X';
	ok(bzimage_probe(img, IMG_LEN, why, sizeof(why)) < 0, "no HdrS: refused: %s", why);
	make_image(0x20f, 1);
	ok(bzimage_probe(img, IMG_LEN - 4096, why, sizeof(why)) < 0 && strstr(why, "truncated"),
	   "a truncated image is refused: %s", why);
	ok(bzimage_probe(img, 100, why, sizeof(why)) < 0, "a 100-byte file is refused");
	img[0x1f1] = 200; /* setup sectors beyond the file */
	ok(bzimage_probe(img, 4096, why, sizeof(why)) < 0, "setup_sects past the end is refused");
	make_image(0x20f, 1);
	put32(0x1f4, 0xffffffff);
	ok(bzimage_probe(img, IMG_LEN, why, sizeof(why)) < 0, "a huge syssize is refused");
	make_image(0x20f, 1);
	img[0x211] = 0;
	ok(bzimage_probe(img, IMG_LEN, why, sizeof(why)) < 0, "a zImage (not LOADED_HIGH) is refused");

	/* a 64-bit load with an initrd */
	fd = mkstemp(initrd);
	if (fd < 0 || write(fd, "initrd-data", 11) != 11) {
		skip_all("cannot write a temporary file");
		return 0;
	}
	close(fd);
	cfg.initrd = initrd;
	make_image(0x20f, 1);
	is_int(bzimage_load(&vm, img, IMG_LEN, &boot), 0, "a 64-bit bzImage loads");
	zp = mem_ptr(&vm.mem, boot.rsi, 4096);
	is_int(boot.mode, CPU_MODE_LONG64, "long mode");
	is_int(boot.rip, 0x100200, "64-bit entry = load address + 0x200");
	is_int(boot.cs.sel, 0x10, "CS = __BOOT_CS");
	is_int(boot.ds.sel, 0x18, "DS = __BOOT_DS");
	ok(boot.cs.l && !boot.cs.db, "CS is a 64-bit code segment");
	ok((boot.cr0 & 0x80000001u) == 0x80000001u && (boot.cr4 & 0x20) && (boot.efer & 0x500) == 0x500,
	   "paging, PAE, LME and LMA on");
	ok(!memcmp(mem_ptr(&vm.mem, 0x100000, IMG_LEN - 1024), img + 1024, IMG_LEN - 1024),
	   "the protected-mode kernel is at 1 MiB");
	is_int(walk(&vm, boot.cr3, 0x100200), 0x100200, "page tables map the entry");
	is_int(walk(&vm, boot.cr3, boot.rsi), boot.rsi, "page tables map the zero page");
	is_int(walk(&vm, boot.cr3, 0xfffff000ull), 0xfffff000ull, "page tables cover 4 GiB");
	{
		uint64_t *gdt = mem_ptr(&vm.mem, boot.gdt_base, 32);

		is_int(boot.gdt_limit, 31, "GDT limit");
		ok(gdt && (gdt[2] >> 40 & 0xff) == 0x9b && (gdt[2] >> 53 & 1), "GDT 0x10 is 64-bit code");
		ok(gdt && (gdt[3] >> 40 & 0xff) == 0x93, "GDT 0x18 is writable data");
	}
	is_int(zp[0x210], 0xff, "type_of_loader");
	ok(!memcmp(zp + 0x202, "HdrS", 4), "the setup header is copied");
	is_int(zp32(zp, 0x238), 2047, "cmdline_size copied");
	ok(!strcmp(mem_ptr(&vm.mem, zp32(zp, 0x228), 32), "console=ttyS0 quiet"), "command line");
	{
		uint32_t at = zp32(zp, 0x218), size = zp32(zp, 0x21c);

		is_int(size, 11, "ramdisk_size");
		ok(at >= 0x1000000 + 0x800000 && !(at & 0xfff) && at + size <= 0x80000000u,
		   "the initrd is above the kernel, page aligned, below initrd_addr_max (%#x)", at);
		ok(!memcmp(mem_ptr(&vm.mem, at, 11), "initrd-data", 11), "the initrd's bytes");
	}
	check_e820(&vm, zp, vm.mem.size);
	check_acpi(&vm, zp64(zp, 0x70), 4);

	/* the 32-bit protocol */
	make_image(0x20f, 0);
	is_int(bzimage_load(&vm, img, IMG_LEN, &boot), 0, "an i386 bzImage loads");
	is_int(boot.mode, CPU_MODE_PROT32, "32-bit protected mode");
	is_int(boot.rip, 0x100000, "32-bit entry = load address");
	is_int(boot.cr0 & 0x80000001u, 1, "PE on, paging off");
	ok(boot.cs.db && !boot.cs.l && boot.cs.sel == 0x10 && boot.ds.sel == 0x18,
	   "flat 32-bit __BOOT_CS and __BOOT_DS");
	ok(boot.rsi == 0x7000 && !boot.rbx && !boot.rbp && !boot.rdi, "ESI = boot_params; EBX, EBP, EDI zero");

	/* hostile or impossible requests */
	cfg.append = "0123456789012345678901234567890123456789";
	make_image(0x20f, 1);
	put32(0x238, 16);
	ok(bzimage_load(&vm, img, IMG_LEN, &boot) < 0, "a command line longer than cmdline_size is refused");
	cfg.append = NULL;
	make_image(0x20f, 1);
	put32(0x22c, 0x17fffff); /* initrd_addr_max just below the kernel's end */
	ok(bzimage_load(&vm, img, IMG_LEN, &boot) < 0, "an initrd with no room below initrd_addr_max is refused");
	make_image(0x20f, 1);
	put32(0x260, 0xf0000000u); /* init_size larger than RAM */
	ok(bzimage_load(&vm, img, IMG_LEN, &boot) < 0, "a kernel larger than RAM is refused");
	cfg.initrd = "/nonexistent/initrd";
	make_image(0x20f, 1);
	ok(bzimage_load(&vm, img, IMG_LEN, &boot) < 0, "a missing initrd is refused");
	unlink(initrd);
	return done_testing();
}
