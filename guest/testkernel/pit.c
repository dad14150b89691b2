/*
 * The 8254 programmable interval timer: channel 0 drives IRQ 0 (our tick),
 * channel 2 (gated through port 0x61, its output readable there too) is a
 * one-shot stopwatch to measure the TSC rate. Intel 8254 datasheet;
 * PC port 0x61 as in the IBM PC/AT technical reference.
 */
#include "kernel.h"

#define PIT_HZ 1193182u /* the input clock: 14.31818 MHz / 12 */
#define PIT_CH0 0x40
#define PIT_CH2 0x42
#define PIT_CMD 0x43
#define PORT_B 0x61	  /* bit 0: channel 2 gate, bit 1: speaker, bit 5: OUT2 */
#define CMD_CH0_RATE 0x34 /* channel 0, lobyte/hibyte, mode 2 (rate generator) */
#define CMD_CH0_LATCH 0x00
#define CMD_CH2_ONESHOT 0xb0 /* channel 2, lobyte/hibyte, mode 0 (interrupt on terminal count) */
#define CAL_COUNT 59659u     /* 50 ms of PIT clock */

volatile uint32_t ticks;
uint32_t tsc_khz;
const char *tsc_source = "none"; /* which clock tsc_khz was measured against */

void pit_init(uint32_t hz)
{
	uint32_t div = (PIT_HZ + hz / 2) / hz;

	outb(PIT_CMD, CMD_CH0_RATE);
	outb(PIT_CH0, div & 0xff);
	outb(PIT_CH0, div >> 8);
	pic_unmask(IRQ_TIMER);
}

void pit_intr(void)
{
	ticks++;
}

/* Latch channel 0's count so the two byte reads belong together. */
uint16_t pit_read_ch0(void)
{
	outb(PIT_CMD, CMD_CH0_LATCH);
	uint8_t lo = inb(PIT_CH0);
	return (uint16_t)(lo | inb(PIT_CH0) << 8);
}

/*
 * Wait for n timer ticks with interrupts on, sleeping in HLT once the timer
 * has shown it ticks (HLT with a dead timer would sleep forever).
 * Returns 0, or -1 if no tick ever came.
 */
int timer_wait_ticks(uint32_t n)
{
	uint32_t target = ticks + n;

	sti();
	for (uint32_t spins = 0; ticks < target; spins++) {
		if (ticks > 0)
			sti_hlt();
		else if (spins > 100000000u)
			return -1;
		else
			asm volatile("pause");
	}
	return 0;
}

/* Channel 2 counts CAL_COUNT clocks; OUT2 rises at the end. */
static uint64_t tsc_per_pit_oneshot(void)
{
	uint32_t give_up = ticks + HZ / 2;

	outb(PORT_B, (inb(PORT_B) & ~0x02) | 0x01); /* gate on, speaker off */
	outb(PIT_CMD, CMD_CH2_ONESHOT);
	outb(PIT_CH2, CAL_COUNT & 0xff);
	outb(PIT_CH2, CAL_COUNT >> 8); /* counting starts on the next clock */
	uint64_t t0 = rdtsc();
	for (uint32_t spins = 0; !(inb(PORT_B) & 0x20); spins++)
		if (spins > 10000000u || (ticks > 0 && ticks > give_up))
			return 0;
	return rdtsc() - t0;
}

/* Fallback: TSC cycles across 10 timer ticks. */
static uint64_t tsc_per_10_ticks(void)
{
	if (timer_wait_ticks(1) < 0)
		return 0;
	uint64_t t0 = rdtsc();
	timer_wait_ticks(10);
	return rdtsc() - t0;
}

/* Sets tsc_khz (0 if neither clock could be used) and tsc_source. */
void tsc_calibrate(void)
{
	uint64_t d = tsc_per_pit_oneshot();

	if (d) {
		tsc_source = "pit-ch2";
		tsc_khz = (uint32_t)(d * PIT_HZ / CAL_COUNT / 1000);
	} else if ((d = tsc_per_10_ticks()) != 0) {
		tsc_source = "pit-ch0-ticks";
		tsc_khz = (uint32_t)(d * HZ / 10 / 1000);
	}
}
