/*
 * ring3's entry: the command line becomes a vm_config, the host and the
 * kernel choose an engine, and the VM runs to its end. ring3 exits with the
 * guest's status (debug-exit port, -- COMMAND's status, 0 on power-off).
 */
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include "boot/loader.h"
#include "core/console.h"
#include "core/log.h"
#include "core/options.h"
#include "core/vm.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: ring3 run [options] [-- COMMAND [ARGS...]]\n"
		   "       ring3 --help | --version\n\n"
		   "ring3 runs a guest kernel in an ordinary Linux process, with hardware\n"
		   "virtualization (kvm engine) or without it (bt engine: binary translation).\n"
		   "`ring3 run --help` lists the options.\n");
}

/* Where `make setup` put the default guests: $RING3_GUEST_DIR, else next to ./ring3. */
static void guest_dir(char *out, size_t len)
{
	const char *env = getenv("RING3_GUEST_DIR");
	char exe[PATH_MAX];
	ssize_t n;

	if (env && *env) {
		snprintf(out, len, "%s", env);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		n = 0;
	exe[n] = 0;
	char *slash = strrchr(exe, '/');
	if (slash)
		*slash = 0;
	if ((size_t)snprintf(out, len, "%.*s/build/guest-linux", (int)(len - 32), n ? exe : ".") >= len)
		out[0] = 0;
}

/*
 * -- COMMAND ARGS travels on the kernel command line as one base64 word,
 * ring3.cmd=…, holding the arguments single-quoted for sh; the default
 * initramfs's /init decodes it and runs it (guest/linux/init).
 */
static int encode_command(char **argv, char *out, size_t len)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char sh[1400];
	size_t n = 0, o = 0;

	for (int i = 0; argv[i]; i++) {
		if (n + 4 > sizeof(sh))
			return -E2BIG;
		if (i)
			sh[n++] = ' ';
		sh[n++] = '\'';
		for (const char *p = argv[i]; *p; p++) {
			if (n + 6 > sizeof(sh))
				return -E2BIG;
			if (*p == '\'') {
				memcpy(sh + n, "'\\''", 4);
				n += 4;
			} else
				sh[n++] = *p;
		}
		sh[n++] = '\'';
	}
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)(uint8_t)sh[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)(uint8_t)sh[i + 1] << 8;
		if (i + 2 < n)
			v |= (uint8_t)sh[i + 2];
		if (o + 5 > len)
			return -E2BIG;
		out[o++] = b64[(v >> 18) & 63];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? b64[v & 63] : '=';
	}
	out[o] = 0;
	return 0;
}

static const struct cpu_engine *choose_engine(struct vm_config *cfg)
{
	char why[256] = "";
	const struct cpu_engine *e;

	switch (cfg->engine) {
	case ENGINE_KVM:
		if (kvm_engine.check(cfg, why, sizeof(why)))
			die("%s", why);
		return &kvm_engine;
	case ENGINE_BT:
		if (bt_engine.check(cfg, why, sizeof(why)))
			die("%s", why);
		return &bt_engine;
	case ENGINE_AUTO:
		break;
	}
	if (kvm_engine.check(cfg, why, sizeof(why)) == 0)
		return &kvm_engine;
	log_debug("not using kvm: %s", why);
	e = &bt_engine;
	if (e->check(cfg, why, sizeof(why)))
		die("%s", why);
	return e;
}

/*
 * The host's TSC rate in kHz, 0 if it cannot be measured. The i386 guest
 * under bt reads the host's TSC natively, and Linux calibrates it against the
 * emulated PIT and PM timer with tight bounds on how long a port read may take
 * (50,000 cycles in tsc_read_refs): a loaded host misses them, Linux warns,
 * and when both fail it may end with an unstable TSC. Given tsc_early_khz=,
 * it skips that and still refines the rate against the PM timer later.
 */
static unsigned long host_tsc_khz(void)
{
	struct timespec a, b, nap = { 0, 10000000 };
	uint64_t t0, t1, t2, t3;
	int64_t ns;

	for (int i = 0; i < 5; i++) {
		t0 = __rdtsc();
		clock_gettime(CLOCK_MONOTONIC_RAW, &a);
		t1 = __rdtsc();
		nanosleep(&nap, NULL);
		t2 = __rdtsc();
		clock_gettime(CLOCK_MONOTONIC_RAW, &b);
		t3 = __rdtsc();
		ns = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
		/* both readings bracketed within ~4 us: not preempted in between */
		if (t1 - t0 < 10000 && t3 - t2 < 10000 && ns > 0)
			return (unsigned long)((t2 + t3 - t0 - t1) / 2 * 1000000 / (uint64_t)ns);
	}
	return 0;
}

/* Appends one space-separated argument to a VM_MAX_CMDLINE buffer holding len bytes. */
__attribute__((format(printf, 3, 4))) static void cmdline_add(char *buf, size_t *len,
								const char *fmt, ...)
{
	va_list ap;
	int r;

	if (*len)
		buf[(*len)++] = ' ';
	va_start(ap, fmt);
	r = vsnprintf(buf + *len, VM_MAX_CMDLINE - *len, fmt, ap);
	va_end(ap);
	if (r < 0 || (size_t)r >= VM_MAX_CMDLINE - *len)
		die("the kernel command line is too long (at most %d bytes)", VM_MAX_CMDLINE - 1);
	*len += (size_t)r;
}

static int cmd_run(int argc, char **argv)
{
	static char kernel[PATH_MAX + 32], initrd[PATH_MAX + 32];
	static char append[VM_MAX_CMDLINE], tuned[VM_MAX_CMDLINE];
	static struct vm vm;
	struct vm_config cfg;
	const struct cpu_engine *engine;
	char err[256], why[256], dir[PATH_MAX];
	size_t n = 0;
	int r;

	r = options_parse_run(argc, argv, &cfg, err, sizeof(err));
	if (r == 1)
		return 0;
	if (r < 0)
		die("%s", err);

	if (cfg.default_guest) {
		/*
		 * The default guest is Debian's amd64 kernel where hardware
		 * virtualization runs it, Debian's i386 kernel under bt.
		 */
		char probe_why[256];
		const char *arch;
		char cmd[2048];

		if (cfg.engine == ENGINE_KVM ||
		    (cfg.engine == ENGINE_AUTO &&
		     kvm_engine.check(&cfg, probe_why, sizeof(probe_why)) == 0))
			arch = "amd64";
		else
			arch = "i386";
		guest_dir(dir, sizeof(dir));
		snprintf(kernel, sizeof(kernel), "%s/vmlinuz-%s", dir, arch);
		snprintf(initrd, sizeof(initrd), "%s/initrd-%s.img", dir, arch);
		if (access(kernel, R_OK) || access(initrd, R_OK))
			die("the default %s guest is not set up (%s): run `make setup` first", arch,
			    strerror(errno));
		cfg.kernel = kernel;
		cfg.initrd = initrd;
		cmdline_add(append, &n, "console=ttyS0 panic=-1 quiet");
		if (cfg.append)
			cmdline_add(append, &n, "%s", cfg.append);
		if (cfg.command) {
			if (encode_command(cfg.command, cmd, sizeof(cmd)))
				die("the command is too long for the kernel command line");
			cmdline_add(append, &n, "ring3.cmd=%s", cmd);
		}
		cfg.append = append;
	}

	/* An explicit --engine kvm that this host cannot serve is said first. */
	if (cfg.engine == ENGINE_KVM && kvm_engine.check(&cfg, why, sizeof(why)))
		die("%s", why);
	if (loader_probe(&cfg, why, sizeof(why)))
		die("%s", why);
	engine = choose_engine(&cfg);
	/* An i386 Linux under bt reads the host's TSC: tell it the rate (host_tsc_khz()). */
	if (engine == &bt_engine && cfg.kernel_kind == KERNEL_BZIMAGE32) {
		unsigned long khz = host_tsc_khz();

		if (khz) { /* first, so that the user's own tsc_early_khz= wins */
			n = 0;
			cmdline_add(tuned, &n, "tsc_early_khz=%lu", khz);
			if (cfg.append)
				cmdline_add(tuned, &n, "%s", cfg.append);
			cfg.append = tuned;
		}
	}
	log_debug("engine %s", engine->name);

	if (console_open(&cfg) < 0)
		return 1;
	if (vm_create(&vm, &cfg, engine))
		return 1;
	r = vm_run(&vm);
	vm_destroy(&vm);
	return r;
}

/*
 * glibc picks AVX/AVX-512 versions of memcpy, memcmp, strlen... at start-up.
 * The bt engine's far callouts run C and libraries between guest
 * instructions; if none of it touches the AVX registers, a callout keeps the
 * guest's x87/SSE state with FXSAVE and leaves the rest where it is, instead
 * of saving and restoring all the host's AVX-512 state around every callout
 * (docs/bt.md, "The world switch"). So ring3 restarts itself once with those
 * variants turned off; the runtime checks that they are (xstate.c).
 */
static void libc_without_avx(char **argv)
{
	static const char key[] = "glibc.cpu.hwcaps=";
	static const char mask[] = "-AVX,-AVX2,-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD,"
				   "-FMA,-FMA4,-AVX_Fast_Unaligned_Load";
	const char *old = getenv("GLIBC_TUNABLES"), *pre = getenv("LD_PRELOAD"), *own;
	char *t;
	int n;

	if (getenv("RING3_LIBC_TUNED") || (getenv("RING3_AVX") && !strcmp(getenv("RING3_AVX"), "1")))
		return;
	/*
	 * Under valgrind /proc/self/exe is valgrind's tool, which will not run
	 * alone: stay as we are (the probe then keeps all the extended state).
	 */
	if (pre && strstr(pre, "/vgpreload_"))
		return;
	if (old && !*old)
		old = NULL;
	/* a user's own hwcaps list keeps its entries, with ours added to it */
	own = old ? strstr(old, key) : NULL;
	if (own && (own == old || own[-1] == ':'))
		n = asprintf(&t, "%.*s%s,%s", (int)(own - old + sizeof(key) - 1), old, mask,
			     own + sizeof(key) - 1);
	else
		n = asprintf(&t, "%s%s%s%s", old ? old : "", old ? ":" : "", key, mask);
	if (n < 0)
		return;
	setenv("GLIBC_TUNABLES", t, 1);
	setenv("RING3_LIBC_TUNED", "1", 1);
	free(t);
	execv("/proc/self/exe", argv);
	/* no /proc: go on as we are; callouts then save all the extended state */
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "run")) /* only a VM has callouts to speed up */
		libc_without_avx(argv);
	if (getenv("RING3_VERBOSE"))
		log_verbose = 1;
	if (argc < 2) {
		fprintf(stderr, "ring3: usage: ring3 run [options] [-- COMMAND [ARGS...]] "
				"(ring3 --help for more)\n");
		return 2;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("ring3 %s\n", RING3_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 2, argv + 2);
	die("unknown command '%s' (try ring3 --help)", argv[1]);
}
