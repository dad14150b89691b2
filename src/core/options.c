/*
 * Options are a table: name, whether it takes a value, and a setter that
 * checks the value. Every error is one line, and nothing is half-applied.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

#define MEM_MIN (16ull << 20)
#define MEM_MAX (64ull << 30)

int options_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 20;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 0:
		break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default:
		return -EINVAL;
	}
	if (*end == 'i' || *end == 'B')
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end || v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static int set_kernel(struct vm_config *c, const char *v) { c->kernel = v; return 0; }
static int set_initrd(struct vm_config *c, const char *v) { c->initrd = v; return 0; }
static int set_append(struct vm_config *c, const char *v) { c->append = v; return 0; }
static int set_stats(struct vm_config *c, const char *v) { (void)v; c->stats = true; return 0; }

static int set_mem(struct vm_config *c, const char *v)
{
	uint64_t size;

	if (options_parse_size(v, &size) || size < MEM_MIN || size > MEM_MAX || size % 4096)
		return -EINVAL;
	c->mem_size = size;
	return 0;
}

static int set_cpus(struct vm_config *c, const char *v)
{
	char *end;
	long n = strtol(v, &end, 10);

	if (*v == 0 || *end || n < 1 || n > VM_MAX_CPUS)
		return -EINVAL;
	c->cpus = (int)n;
	return 0;
}

/* The index of v in names (the enum's order), or -EINVAL. */
static int keyword(const char *v, const char *const names[], int n)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(v, names[i]))
			return i;
	return -EINVAL;
}

static int set_engine(struct vm_config *c, const char *v)
{
	static const char *const names[] = { [ENGINE_AUTO] = "auto", [ENGINE_KVM] = "kvm",
					     [ENGINE_BT] = "bt" };
	int i = keyword(v, names, (int)(sizeof(names) / sizeof(names[0])));

	if (i < 0)
		return i;
	c->engine = (enum engine_choice)i;
	return 0;
}

static int set_bt_user(struct vm_config *c, const char *v)
{
	static const char *const names[] = { [BT_USER_AUTO] = "auto", [BT_USER_DIRECT] = "direct",
					     [BT_USER_TRANSLATE] = "translate" };
	int i = keyword(v, names, (int)(sizeof(names) / sizeof(names[0])));

	if (i < 0)
		return i;
	c->bt_user = (enum bt_user_mode)i;
	return 0;
}

static int set_console(struct vm_config *c, const char *v)
{
	c->console_virtio = false;
	if (!strcmp(v, "stdio"))
		c->console = CONSOLE_STDIO;
	else if (!strcmp(v, "none"))
		c->console = CONSOLE_NONE;
	else if (!strcmp(v, "virtio")) {
		c->console = CONSOLE_STDIO;
		c->console_virtio = true;
	} else if (!strncmp(v, "file:", 5) && v[5]) {
		c->console = CONSOLE_FILE;
		c->console_path = v + 5;
	} else
		return -EINVAL;
	return 0;
}

/* --disk PATH[,ro][,cache=writeback|none]: repeatable, /dev/vda first */
static int set_disk(struct vm_config *c, const char *v)
{
	struct vm_disk d = { 0 };
	const char *comma = strchr(v, ',');
	char *path;

	if (c->nr_disks == VM_MAX_DISKS || !*v || comma == v)
		return -EINVAL;
	path = comma ? strndup(v, (size_t)(comma - v)) : strdup(v);
	if (!path)
		return -ENOMEM;
	while (comma) {
		const char *o = comma + 1;
		size_t n;

		comma = strchr(o, ',');
		n = comma ? (size_t)(comma - o) : strlen(o);
		if (n == 2 && !strncmp(o, "ro", 2))
			d.ro = true;
		else if (n == 15 && !strncmp(o, "cache=writeback", 15))
			d.direct = false;
		else if (n == 10 && !strncmp(o, "cache=none", 10))
			d.direct = true;
		else {
			free(path);
			return -EINVAL;
		}
	}
	d.path = path;
	c->disk[c->nr_disks++] = d;
	return 0;
}

static int parse_port(const char *s, size_t n, uint16_t *out)
{
	unsigned long v = 0;

	if (n == 0 || n > 5)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return -EINVAL;
	*out = (uint16_t)v;
	return 0;
}

/* hostfwd=tcp:HOSTPORT-:GUESTPORT (QEMU's tcp::HOSTPORT-:GUESTPORT too) */
static int parse_hostfwd(struct vm_net *n, const char *o, size_t len)
{
	const char *dash, *end = o + len;

	if (n->nr_hostfwd == VM_MAX_HOSTFWD || len < 4 || strncmp(o, "tcp:", 4))
		return -EINVAL;
	o += 4;
	if (o < end && *o == ':')
		o++;
	dash = memchr(o, '-', (size_t)(end - o));
	if (!dash || dash + 2 > end || dash[1] != ':' ||
	    parse_port(o, (size_t)(dash - o), &n->hostfwd[n->nr_hostfwd].host) ||
	    parse_port(dash + 2, (size_t)(end - dash - 2), &n->hostfwd[n->nr_hostfwd].guest))
		return -EINVAL;
	n->nr_hostfwd++;
	return 0;
}

static int parse_mac(struct vm_net *n, const char *o, size_t len)
{
	unsigned b[6];
	char tmp[18];

	if (len != 17)
		return -EINVAL;
	memcpy(tmp, o, 17);
	tmp[17] = 0;
	if (sscanf(tmp, "%2x:%2x:%2x:%2x:%2x:%2x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
		return -EINVAL;
	if (b[0] & 1) /* a multicast address cannot be a NIC's */
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		n->mac[i] = (uint8_t)b[i];
	n->has_mac = true;
	return 0;
}

/* --net user[,hostfwd=…][,mac=…] or --net tap:IFNAME[,mac=…] */
static int set_net(struct vm_config *c, const char *v)
{
	struct vm_net n = { 0 };
	const char *comma = strchr(v, ',');
	size_t len = comma ? (size_t)(comma - v) : strlen(v);

	if (len == 4 && !strncmp(v, "user", 4)) {
		n.kind = NET_USER;
	} else if (len > 4 && len - 4 < sizeof(n.tap) && !strncmp(v, "tap:", 4)) {
		n.kind = NET_TAP;
		memcpy(n.tap, v + 4, len - 4);
	} else {
		return -EINVAL;
	}
	while (comma) {
		const char *o = comma + 1;

		comma = strchr(o, ',');
		len = comma ? (size_t)(comma - o) : strlen(o);
		if (len > 8 && !strncmp(o, "hostfwd=", 8) && n.kind == NET_USER) {
			if (parse_hostfwd(&n, o + 8, len - 8))
				return -EINVAL;
		} else if (len > 4 && !strncmp(o, "mac=", 4)) {
			if (parse_mac(&n, o + 4, len - 4))
				return -EINVAL;
		} else {
			return -EINVAL;
		}
	}
	c->net = n;
	return 0;
}

static const struct option_desc {
	const char *name;
	const char *arg; /* NULL: a flag */
	int (*set)(struct vm_config *c, const char *v);
	const char *help;
	const char *expect; /* what a valid value looks like, for the error line */
} run_options[] = {
	{ "kernel", "FILE", set_kernel, "kernel image: bzImage or multiboot ELF", "a file" },
	{ "initrd", "FILE", set_initrd, "initial ramdisk", "a file" },
	{ "append", "ARGS", set_append, "kernel command line (added to the default guest's)",
	  "a string" },
	{ "mem", "SIZE", set_mem, "guest RAM, e.g. 256M or 3G (default 256M)",
	  "16M to 64G, a multiple of 4K (e.g. 512M, 2G)" },
	{ "cpus", "N", set_cpus, "virtual CPUs (default 1)", "1 to 32" },
	{ "engine", "E", set_engine, "auto, kvm or bt (default auto)", "auto, kvm or bt" },
	{ "bt-user", "MODE", set_bt_user,
	  "bt engine, guest ring 3: direct, translate, or auto (translate for multiboot kernels)",
	  "auto, direct or translate" },
	{ "console", "C", set_console,
	  "stdio, none, file:PATH, or virtio (hvc0 beside ttyS0) (default stdio)",
	  "stdio, none, file:PATH or virtio" },
	{ "stats", NULL, set_stats, "print exits, traps and timings at exit", NULL },
	{ "disk", "PATH[,OPT]", set_disk,
	  "raw image as virtio-blk (vda, vdb, ...): OPT ro, cache=writeback|none",
	  "PATH[,ro][,cache=writeback|none], at most 8 disks" },
	{ "net", "user|tap:IF", set_net,
	  "virtio-net: user[,hostfwd=tcp:HPORT-:GPORT,mac=M] or tap:IFNAME[,mac=M]",
	  "user[,hostfwd=tcp:HOSTPORT-:GUESTPORT...][,mac=52:54:00:12:34:56] or tap:IFNAME" },
};

#define NR_RUN_OPTIONS (sizeof(run_options) / sizeof(run_options[0]))

void options_usage_run(FILE *f)
{
	fprintf(f, "usage: ring3 run [options] [-- COMMAND [ARGS...]]\n\n"
		   "Boots a kernel (by default ring3's default Linux guest, to a shell).\n"
		   "With -- COMMAND, runs COMMAND in the default guest and exits with its status.\n\n"
		   "options:\n");
	for (size_t i = 0; i < NR_RUN_OPTIONS; i++) {
		char left[40];

		snprintf(left, sizeof(left), "--%s%s%s", run_options[i].name,
			 run_options[i].arg ? " " : "", run_options[i].arg ? run_options[i].arg : "");
		fprintf(f, "  %-22s %s\n", left, run_options[i].help);
	}
	fprintf(f, "  %-22s %s\n", "-h, --help", "this help");
	fprintf(f, "\nOn the console: C-a x exits, C-a h lists the keys.\n");
}

int options_parse_run(int argc, char **argv, struct vm_config *cfg, char *err, size_t errlen)
{
	bool dashdash = false;
	int i;

	memset(cfg, 0, sizeof(*cfg));
	cfg->mem_size = 256ull << 20;
	cfg->cpus = 1;
	cfg->engine = ENGINE_AUTO;
	cfg->console = CONSOLE_STDIO;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *val = NULL, *eq;
		const struct option_desc *o = NULL;
		size_t nlen;

		if (!strcmp(a, "--")) {
			dashdash = true;
			i++;
			break;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			options_usage_run(stdout);
			return 1;
		}
		if (strncmp(a, "--", 2)) {
			snprintf(err, errlen, "unexpected argument '%s' (a command goes after --)", a);
			return -EINVAL;
		}
		a += 2;
		eq = strchr(a, '=');
		nlen = eq ? (size_t)(eq - a) : strlen(a);
		for (size_t k = 0; k < NR_RUN_OPTIONS; k++)
			if (strlen(run_options[k].name) == nlen &&
			    !strncmp(run_options[k].name, a, nlen))
				o = &run_options[k];
		if (!o) {
			snprintf(err, errlen, "unknown option '--%.*s' (see ring3 run --help)",
				 (int)nlen, a);
			return -EINVAL;
		}
		if (o->arg) {
			if (eq)
				val = eq + 1;
			else if (i + 1 < argc)
				val = argv[++i];
			else {
				snprintf(err, errlen, "--%s needs a value: %s", o->name, o->expect);
				return -EINVAL;
			}
		} else if (eq) {
			snprintf(err, errlen, "--%s takes no value", o->name);
			return -EINVAL;
		}
		if (o->set(cfg, val)) {
			snprintf(err, errlen, "bad --%s '%s': expected %s", o->name, val, o->expect);
			return -EINVAL;
		}
	}
	if (i < argc)
		cfg->command = &argv[i];
	if (dashdash && !cfg->command) {
		snprintf(err, errlen, "nothing after --: give a command to run in the guest");
		return -EINVAL;
	}
	if (cfg->command && cfg->kernel) {
		snprintf(err, errlen, "-- COMMAND runs in the default guest: drop --kernel");
		return -EINVAL;
	}
	cfg->default_guest = !cfg->kernel;
	if (cfg->default_guest && cfg->initrd) {
		snprintf(err, errlen, "--initrd needs --kernel");
		return -EINVAL;
	}
	return 0;
}
