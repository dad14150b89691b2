/*
 * Pure logic of the core: option parsing (good and bad command lines), the
 * bus registry (overlaps, lookups, unclaimed accesses), guest RAM bounds.
 */
#include <errno.h>
#include <string.h>

#include "core/bus.h"
#include "core/mem.h"
#include "core/options.h"
#include "tap.h"

static int parse(struct vm_config *cfg, char *err, const char *a0, const char *a1, const char *a2,
		 const char *a3)
{
	char *argv[5] = { (char *)a0, (char *)a1, (char *)a2, (char *)a3, NULL };
	int argc = 0;

	while (argc < 4 && argv[argc])
		argc++;
	err[0] = 0;
	return options_parse_run(argc, argv, cfg, err, 256);
}

static uint8_t last_write;
static void dev_fn(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	if (is_write)
		last_write = data[0];
	else
		memset(data, (int)(off + (uintptr_t)opaque), size);
}

int main(void)
{
	struct vm_config cfg;
	char err[256];
	uint64_t size;

	/* sizes */
	ok(!options_parse_size("256M", &size) && size == 256ull << 20, "256M");
	ok(!options_parse_size("3G", &size) && size == 3ull << 30, "3G");
	ok(!options_parse_size("512", &size) && size == 512ull << 20, "a bare number is MiB");
	ok(!options_parse_size("2GiB", &size) && size == 2ull << 30, "2GiB");
	ok(options_parse_size("12x", &size) < 0, "12x is refused");
	ok(options_parse_size("-1G", &size) < 0, "-1G is refused");
	ok(options_parse_size("99999999999999999999", &size) < 0, "overflow is refused");
	ok(options_parse_size("", &size) < 0, "empty is refused");

	/* options */
	is_int(parse(&cfg, err, "--mem", "1G", "--cpus=4", NULL), 0, "--mem 1G --cpus=4");
	ok(cfg.mem_size == 1ull << 30 && cfg.cpus == 4 && cfg.default_guest, "values applied");
	ok(parse(&cfg, err, "--mem", "8M", NULL, NULL) < 0 && strstr(err, "--mem"),
	   "too little RAM: %s", err);
	ok(parse(&cfg, err, "--cpus", "0", NULL, NULL) < 0 && strstr(err, "1 to 32"),
	   "--cpus 0: %s", err);
	ok(parse(&cfg, err, "--cpus", "33", NULL, NULL) < 0, "--cpus 33");
	ok(parse(&cfg, err, "--engine", "vmware", NULL, NULL) < 0 && strstr(err, "auto, kvm or bt"),
	   "bad engine: %s", err);
	ok(parse(&cfg, err, "--frobnicate", NULL, NULL, NULL) < 0 && strstr(err, "unknown option"),
	   "unknown option: %s", err);
	ok(parse(&cfg, err, "--kernel", NULL, NULL, NULL) < 0 && strstr(err, "needs a value"),
	   "missing value: %s", err);
	ok(parse(&cfg, err, "--stats=1", NULL, NULL, NULL) < 0, "a flag with a value");
	ok(parse(&cfg, err, "--console", "file:", NULL, NULL) < 0, "file: without a path");
	is_int(parse(&cfg, err, "--console", "file:/tmp/x", "--engine", "bt"), 0, "console file");
	ok(cfg.console == CONSOLE_FILE && !strcmp(cfg.console_path, "/tmp/x") &&
	   cfg.engine == ENGINE_BT, "console and engine applied");
	is_int(parse(&cfg, err, "--stats", "--", "uname", "-r"), 0, "-- COMMAND");
	ok(cfg.command && !strcmp(cfg.command[0], "uname") && !strcmp(cfg.command[1], "-r") &&
	   cfg.stats, "the command is kept");
	ok(parse(&cfg, err, "--", NULL, NULL, NULL) < 0 && strstr(err, "nothing after"),
	   "-- alone: %s", err);
	ok(parse(&cfg, err, "--kernel", "k", "--", "ls") < 0, "-- COMMAND with --kernel");
	ok(parse(&cfg, err, "--initrd", "i", NULL, NULL) < 0, "--initrd without --kernel");
	ok(parse(&cfg, err, "stray", NULL, NULL, NULL) < 0 && strstr(err, "unexpected"),
	   "a stray word: %s", err);

	/* bus */
	{
		static struct bus bus = { .name = "test" };
		uint8_t d[8];

		is_int(bus_register(&bus, 0x3f8, 8, dev_fn, (void *)0, "uart"), 0, "register");
		is_int(bus_register(&bus, 0x60, 1, dev_fn, (void *)0x10, "kbd"), 0, "register below");
		is_int(bus_register(&bus, 0x3fc, 8, dev_fn, NULL, "x"), -EBUSY, "overlap refused");
		is_int(bus_register(&bus, ~0ull - 2, 8, dev_fn, NULL, "x"), -EINVAL, "wrap refused");
		is_int(bus_register(&bus, 0x100, 0, dev_fn, NULL, "x"), -EINVAL, "empty refused");
		is_int(bus_access(&bus, 0x3fa, d, 1, false), 0, "dispatch");
		is_int(d[0], 2, "handler sees the offset");
		is_int(bus_access(&bus, 0x60, d, 1, false), 0, "second device");
		is_int(d[0], 0x10, "its opaque");
		d[0] = 0x5a;
		bus_access(&bus, 0x3f8, d, 1, true);
		is_int(last_write, 0x5a, "writes reach the device");
		is_int(bus_access(&bus, 0x400, d, 4, false), -ENOENT, "unclaimed");
		is_int(d[0] & d[3], 0xff, "unclaimed reads are all ones");
		is_int(bus_access(&bus, 0x3f8, d, 0, false), -ENOENT, "size 0");
		is_int(bus_access(&bus, 0x3f8, d, 16, false), -ENOENT, "size 16");
		for (int i = 0; i < BUS_MAX_RANGES; i++)
			bus_register(&bus, 0x1000 + 16 * (uint64_t)i, 8, dev_fn, NULL, "n");
		is_int(bus.nr, BUS_MAX_RANGES, "the registry fills up without overflowing");
	}

	/* guest RAM */
	{
		struct guest_mem m;

		if (mem_init(&m, 4ull << 30) == 0) {
			is_int(m.nr_regions, 2, "4 GiB of RAM splits around the PCI hole");
			ok(mem_ptr(&m, 0, 4096) == m.host, "gpa 0");
			ok(mem_ptr(&m, MEM_PCI_HOLE_START - 4096, 4096) != NULL, "last page below the hole");
			ok(mem_ptr(&m, MEM_PCI_HOLE_START - 4096, 8192) == NULL, "straddling the hole");
			ok(mem_ptr(&m, 0xfee00000, 4) == NULL, "the LAPIC is not RAM");
			ok(mem_ptr(&m, MEM_4G, 4096) == m.host + MEM_PCI_HOLE_START, "RAM above 4 GiB");
			ok(mem_ptr(&m, MEM_4G + (1ull << 30) - 1, 2) == NULL, "past the top");
			ok(mem_ptr(&m, ~0ull - 10, 100) == NULL, "wrapping");
			is_int(mem_top(&m), MEM_4G + (1ull << 30), "mem_top");
			mem_destroy(&m);
		} else {
			ok(1, "# SKIP cannot reserve 4 GiB");
		}
	}
	return done_testing();
}
