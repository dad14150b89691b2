/*
 * Test Anything Protocol output on the serial console: one "ok N - text"
 * or "not ok N - text" line per check, "# " diagnostics saying expected
 * versus got, the plan "1..N" last, and the failure count written to the
 * isa-debug-exit port (QEMU exits with status (value << 1) | 1).
 */
#include "kernel.h"

#define DEBUG_EXIT_PORT 0xf4

static uint32_t checks, failures;

int tap_ok(int cond, const char *desc)
{
	checks++;
	if (!cond)
		failures++;
	kprintf("%sok %u - %s\n", cond ? "" : "not ", checks, desc);
	return cond;
}

int tap_eq(uint32_t got, uint32_t want, const char *desc)
{
	int ok = tap_ok(got == want, desc);
	if (!ok)
		kprintf("#   expected 0x%x, got 0x%x\n", want, got);
	return ok;
}

static const char *vector_name(uint32_t v)
{
	switch (v) {
	case 0:
		return "#DE";
	case 3:
		return "#BP";
	case 6:
		return "#UD";
	case 13:
		return "#GP";
	case 14:
		return "#PF";
	case PROBE_NONE:
		return "no exception";
	default:
		return "another vector";
	}
}

/* Did the probed instruction raise `vector` with error code `err`? */
int tap_probe(const struct probe *p, uint32_t vector, uint32_t err, const char *desc)
{
	int ok = tap_ok(p->vector == vector && p->err == err, desc);
	if (!ok)
		kprintf("#   expected %s (%u) err 0x%x, got %s (%u) err 0x%x\n",
			vector_name(vector), vector, err, vector_name(p->vector), p->vector,
			p->err);
	return ok;
}

/* Did the probed access raise #PF with this error code and CR2? */
int tap_pf(const struct probe *p, uint32_t err, uint32_t cr2, const char *desc)
{
	int ok = tap_ok(p->vector == 14 && p->err == err && p->cr2 == cr2, desc);
	if (!ok)
		kprintf("#   expected #PF err 0x%x cr2 0x%08x, got %s (%u) err 0x%x cr2 0x%08x\n",
			err, cr2, vector_name(p->vector), p->vector, p->err, p->cr2);
	return ok;
}

void tap_plan(void)
{
	kprintf("1..%u\n", checks);
}

uint32_t tap_failures(void)
{
	return failures;
}

void debug_exit(uint32_t code)
{
#ifdef TK_PV
	if (pv_methods) /* the ABI was found */
		pv_call(PV_SHUTDOWN, code, 0);
#endif
	outl(DEBUG_EXIT_PORT, code);
	halt_forever(); /* no exit device: stop here */
}

/* Something went so wrong that the remaining checks cannot run. */
void tap_bail(const char *why)
{
	kprintf("Bail out! %s\n", why);
	debug_exit(0x7f);
}
