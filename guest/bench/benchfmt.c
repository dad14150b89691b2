/*
 * The benchmark options and output line, shared by the guest kernel and
 * bench-native so the two always parse and print alike. Freestanding: a
 * few string helpers instead of libc.
 */
#include "bench.h"

const char *const bench_names[B_COUNT] = {
    [B_SYSCALL] = "syscall", [B_PAGEFAULT] = "pagefault", [B_PORTIO] = "portio",
    [B_CR3] = "cr3",	     [B_INVLPG] = "invlpg",	  [B_INT] = "int",
    [B_CLISTI] = "clisti",   [B_PUSHFPOPF] = "pushfpopf", [B_SIEVE] = "sieve",
    [B_CRC32] = "crc32",
};

static const uint32_t default_iters[B_COUNT] = {
    [B_SYSCALL] = 100000, [B_PAGEFAULT] = 20000, [B_PORTIO] = 100000,  [B_CR3] = 100000,
    [B_INVLPG] = 100000,  [B_INT] = 100000,	 [B_CLISTI] = 1000000, [B_PUSHFPOPF] = 1000000,
    [B_SIEVE] = 4,	  [B_CRC32] = 64,
};

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n';
}

/* Does the word [s, end) start with prefix? Returns what follows or 0. */
static const char *after(const char *s, const char *end, const char *prefix)
{
	while (*prefix && s < end && *s == *prefix)
		s++, prefix++;
	return *prefix ? 0 : s;
}

/* Decimal digits in [s, end) to *v; 0 on success. */
static int parse_u32(const char *s, const char *end, uint32_t *v)
{
	uint64_t n = 0;

	if (s == end)
		return -1;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		n = n * 10 + (uint32_t)(*s - '0');
		if (n > 0xffffffffu)
			return -1;
	}
	*v = (uint32_t)n;
	return 0;
}

static int parse_list(struct bench_opts *o, const char *s, const char *end)
{
	while (s < end) {
		const char *item_end = s, *colon = 0;
		while (item_end < end && *item_end != ',') {
			if (*item_end == ':')
				colon = item_end;
			item_end++;
		}
		const char *name_end = colon ? colon : item_end;
		int found = 0;
		if (after(s, name_end, "all") == name_end && !colon) {
			o->mask = (1u << B_COUNT) - 1;
			found = 1;
		}
		for (int b = 0; b < B_COUNT && !found; b++) {
			if (after(s, name_end, bench_names[b]) != name_end)
				continue;
			o->mask |= 1u << b;
			if (colon &&
			    (parse_u32(colon + 1, item_end, &o->iters_of[b]) || !o->iters_of[b]))
				return -1;
			found = 1;
		}
		if (!found)
			return -1;
		s = item_end < end ? item_end + 1 : end;
	}
	return 0;
}

int bench_parse(struct bench_opts *o, const char *cmdline)
{
	const char *s = cmdline;

	*o = (struct bench_opts){0};
	while (*s) {
		while (is_space(*s))
			s++;
		const char *end = s, *v;
		while (*end && !is_space(*end))
			end++;
		if ((v = after(s, end, "bench=")) != 0) {
			if (parse_list(o, v, end))
				return -1;
		} else if ((v = after(s, end, "iters=")) != 0) {
			if (parse_u32(v, end, &o->iters) || !o->iters)
				return -1;
		}
		s = end;
	}
	return 0;
}

uint32_t bench_iters(const struct bench_opts *o, enum bench_id b)
{
	if (o->iters_of[b])
		return o->iters_of[b];
	return o->iters ? o->iters : default_iters[b];
}

/* A tiny appender: enough for the one line format. */
struct out {
	char *p;
	int left;
	int len;
};

static void put_str(struct out *o, const char *s)
{
	for (; *s; s++, o->len++)
		if (o->left > 1)
			*o->p++ = *s, o->left--;
	if (o->left > 0)
		*o->p = 0;
}

static void put_u64(struct out *o, uint64_t v, int min_digits)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v || n < min_digits);
	char s[24];
	for (int i = 0; i < n; i++)
		s[i] = tmp[n - 1 - i];
	s[n] = 0;
	put_str(o, s);
}

int bench_format(char *buf, int len, const struct bench_result *r, uint32_t tsc_khz)
{
	struct out o = {buf, len, 0};
	uint32_t iters = r->iters ? r->iters : 1;
	/* ns = cycles / (kHz / 1e6); keep one decimal: tenths of a ns. */
	uint64_t tenth_ns = tsc_khz ? r->cycles * 10000000ull / ((uint64_t)tsc_khz * iters) : 0;

	put_str(&o, "bench ");
	put_str(&o, bench_names[r->id]);
	put_str(&o, " iters=");
	put_u64(&o, r->iters, 1);
	put_str(&o, " cycles_per_iter=");
	put_u64(&o, r->cycles / iters, 1);
	put_str(&o, " ns_per_iter=");
	put_u64(&o, tenth_ns / 10, 1);
	put_str(&o, ".");
	put_u64(&o, tenth_ns % 10, 1);
	if (r->has_result) {
		put_str(&o, " result=");
		put_u64(&o, r->result, 1);
	}
	return o.len;
}

int bench_format_tsc(char *buf, int len, uint32_t tsc_khz, const char *source)
{
	struct out o = {buf, len, 0};

	put_str(&o, "tsc mhz=");
	put_u64(&o, tsc_khz / 1000, 1);
	put_str(&o, ".");
	put_u64(&o, tsc_khz % 1000, 3);
	put_str(&o, " source=");
	put_str(&o, source);
	return o.len;
}
