/*
 * The Motorola MC146818 real-time clock and CMOS RAM at 0x70 (index; bit 7,
 * the NMI mask, is ignored) and 0x71 (data), IRQ 8. Follows the MC146818A
 * datasheet: time and alarm registers, registers A-D, periodic, alarm and
 * update-ended interrupts; the century is at 0x32 (the ACPI FADT's CENTURY).
 */

/*
 * BCD or binary and 12 or 24 hours per register B; UIP is set for the last
 * 244 us of each second. Time is the host's UTC plus whatever offset the
 * guest sets (years 1900-2199). Day of week is computed from the date; a
 * write to it is ignored. The other 114 bytes are plain RAM.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "../core/evloop.h"
#include "../core/log.h"
#include "../core/vm.h"
#include "dev.h"

#define RTC_INDEX 0x70
#define RTC_IRQ 8
#define RTC_NMI_MASK 0x80

/* Register indices */
#define RTC_SECONDS 0x00
#define RTC_SECONDS_ALARM 0x01
#define RTC_MINUTES 0x02
#define RTC_MINUTES_ALARM 0x03
#define RTC_HOURS 0x04
#define RTC_HOURS_ALARM 0x05
#define RTC_DAY_OF_WEEK 0x06 /* 1 = Sunday */
#define RTC_DAY_OF_MONTH 0x07
#define RTC_MONTH 0x08
#define RTC_YEAR 0x09
#define RTC_REG_A 0x0a
#define RTC_REG_B 0x0b
#define RTC_REG_C 0x0c
#define RTC_REG_D 0x0d
#define RTC_CENTURY 0x32

#define REG_A_UIP 0x80	  /* update in progress: read-only */
#define REG_A_RS 0x0f	  /* periodic rate select */
#define REG_B_SET 0x80	  /* updates frozen while the guest sets the time */
#define REG_B_PIE 0x40	  /* periodic interrupt enable */
#define REG_B_AIE 0x20	  /* alarm interrupt enable */
#define REG_B_UIE 0x10	  /* update-ended interrupt enable */
#define REG_B_DM 0x04	  /* binary (else BCD) */
#define REG_B_24H 0x02	  /* 24-hour (else 12 with bit 7 = PM) */
#define REG_C_IRQF 0x80
#define REG_C_PF 0x40
#define REG_C_AF 0x20
#define REG_C_UF 0x10
#define REG_D_VRT 0x80	  /* valid RAM and time: the battery is fine */
#define HOUR_PM 0x80
#define ALARM_DONT_CARE 0xc0

#define UIP_NS 244000ull /* the update cycle's 244 us before the second ends */
#define NS 1000000000ll
/* The clock the guest may set: 1900-01-01 to 2199-12-31, so nanoseconds fit 64 bits. */
#define RTC_MIN_SEC (-2208988800ll)
#define RTC_MAX_SEC 7258118399ll

static struct rtc {
	struct vm *vm;
	pthread_mutex_t lock;
	uint8_t index;
	uint8_t ram[128];	/* registers A, B, alarms and CMOS RAM; time is computed */
	int64_t offset_ns;	/* guest time = CLOCK_REALTIME + offset */
	int64_t frozen_s;	/* the time while SET is on */
	int64_t last_sec, last_tick; /* the last update cycle and periodic tick seen */
	int tfd;
	int irq_level;
} rtc;

static int64_t host_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

static int64_t rtc_guest_ns(const struct rtc *r, int64_t host)
{
	if (r->ram[RTC_REG_B] & REG_B_SET)
		return r->frozen_s * NS;
	return host + r->offset_ns;
}

static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b < 0);
}

static bool rtc_binary(const struct rtc *r)
{
	return r->ram[RTC_REG_B] & REG_B_DM;
}

static uint8_t rtc_encode(const struct rtc *r, int v)
{
	return rtc_binary(r) ? (uint8_t)v : (uint8_t)((v / 10) << 4 | v % 10);
}

/* Garbage in (a BCD nibble above 9, a value out of range) is clamped. */
static int rtc_decode(const struct rtc *r, uint8_t v, int lo, int hi)
{
	int n = rtc_binary(r) ? v : (v >> 4) * 10 + (v & 0xf);

	return n < lo ? lo : n > hi ? hi : n;
}

static uint8_t rtc_encode_hour(const struct rtc *r, int h)
{
	if (r->ram[RTC_REG_B] & REG_B_24H)
		return rtc_encode(r, h);
	return (uint8_t)(rtc_encode(r, h % 12 ? h % 12 : 12) | (h >= 12 ? HOUR_PM : 0));
}

static int rtc_decode_hour(const struct rtc *r, uint8_t v)
{
	if (r->ram[RTC_REG_B] & REG_B_24H)
		return rtc_decode(r, v, 0, 23);
	return rtc_decode(r, v & 0x7f, 1, 12) % 12 + ((v & HOUR_PM) ? 12 : 0);
}

static void rtc_tm(int64_t sec, struct tm *tm)
{
	time_t t = (time_t)sec;

	if (!gmtime_r(&t, tm))
		memset(tm, 0, sizeof(*tm));
}

/* The time and date registers, encoded as the guest asked, for second sec. */
static uint8_t rtc_time_reg(const struct rtc *r, unsigned idx, int64_t sec)
{
	struct tm tm;

	rtc_tm(sec, &tm);
	switch (idx) {
	case RTC_SECONDS:
		return rtc_encode(r, tm.tm_sec > 59 ? 59 : tm.tm_sec);
	case RTC_MINUTES:
		return rtc_encode(r, tm.tm_min);
	case RTC_HOURS:
		return rtc_encode_hour(r, tm.tm_hour);
	case RTC_DAY_OF_WEEK:
		return rtc_encode(r, tm.tm_wday + 1);
	case RTC_DAY_OF_MONTH:
		return rtc_encode(r, tm.tm_mday);
	case RTC_MONTH:
		return rtc_encode(r, tm.tm_mon + 1);
	case RTC_YEAR:
		return rtc_encode(r, (tm.tm_year + 1900) % 100);
	default: /* RTC_CENTURY */
		return rtc_encode(r, (tm.tm_year + 1900) / 100 % 100);
	}
}

static bool rtc_is_time_reg(unsigned idx)
{
	return idx == RTC_SECONDS || idx == RTC_MINUTES || idx == RTC_HOURS ||
	       (idx >= RTC_DAY_OF_WEEK && idx <= RTC_YEAR) || idx == RTC_CENTURY;
}

/* Set one time field; the clock keeps its phase within the second. */
static void rtc_set_time_reg(struct rtc *r, unsigned idx, uint8_t v, int64_t host)
{
	int64_t guest = rtc_guest_ns(r, host), old = floor_div(guest, NS), sec;
	struct tm tm;
	int year;

	rtc_tm(old, &tm);
	year = tm.tm_year + 1900;
	switch (idx) {
	case RTC_SECONDS:
		tm.tm_sec = rtc_decode(r, v, 0, 59);
		break;
	case RTC_MINUTES:
		tm.tm_min = rtc_decode(r, v, 0, 59);
		break;
	case RTC_HOURS:
		tm.tm_hour = rtc_decode_hour(r, v);
		break;
	case RTC_DAY_OF_MONTH:
		tm.tm_mday = rtc_decode(r, v, 1, 31);
		break;
	case RTC_MONTH:
		tm.tm_mon = rtc_decode(r, v, 1, 12) - 1;
		break;
	case RTC_YEAR:
		tm.tm_year = year / 100 * 100 + rtc_decode(r, v, 0, 99) - 1900;
		break;
	case RTC_CENTURY:
		tm.tm_year = rtc_decode(r, v, 0, 99) * 100 + year % 100 - 1900;
		break;
	default: /* day of week: computed from the date */
		return;
	}
	sec = (int64_t)timegm(&tm);
	sec = sec < RTC_MIN_SEC ? RTC_MIN_SEC : sec > RTC_MAX_SEC ? RTC_MAX_SEC : sec;
	if (r->ram[RTC_REG_B] & REG_B_SET)
		r->frozen_s = sec;
	else
		r->offset_ns = sec * NS + (guest - old * NS) - host;
}

static bool rtc_alarm_match(const struct rtc *r, int64_t sec)
{
	static const unsigned alarm[3][2] = { { RTC_SECONDS_ALARM, RTC_SECONDS },
					      { RTC_MINUTES_ALARM, RTC_MINUTES },
					      { RTC_HOURS_ALARM, RTC_HOURS } };

	for (int i = 0; i < 3; i++) {
		uint8_t a = r->ram[alarm[i][0]];

		if ((a & ALARM_DONT_CARE) != ALARM_DONT_CARE && a != rtc_time_reg(r, alarm[i][1], sec))
			return false;
	}
	return true;
}

/* Periodic ticks count the 32.768 kHz time base divided per RS (RS 1, 2 alias 8, 9). */
static int rtc_rate_shift(const struct rtc *r)
{
	int rs = r->ram[RTC_REG_A] & REG_A_RS;

	return rs == 0 ? -1 : rs <= 2 ? rs + 6 : rs - 1;
}

/* The periodic tick index at guest time guest (ns), and when tick t begins. */
static int64_t rtc_tick(int64_t guest, int shift)
{
	__int128 base = (__int128)guest * 32768;

	return (int64_t)((base / NS - (base % NS < 0)) >> shift);
}

static int64_t rtc_tick_ns(int64_t tick, int shift)
{
	return (int64_t)((((__int128)tick << shift) * NS + 32767) / 32768);
}

/*
 * Set the flags of the update cycles, alarms and periodic ticks since the
 * last look; raise IRQ 8 with IRQF and arm the timer for the next enabled
 * event. Called with the lock held.
 */
static void rtc_catch_up(struct rtc *r, int64_t host)
{
	uint8_t b = r->ram[RTC_REG_B], *c = &r->ram[RTC_REG_C];
	int64_t guest = rtc_guest_ns(r, host), sec = floor_div(guest, NS), next = 0;
	int shift = rtc_rate_shift(r);

	if (!(b & REG_B_SET) && sec != r->last_sec) {
		*c |= REG_C_UF;
		if (rtc_alarm_match(r, sec))
			*c |= REG_C_AF;
		r->last_sec = sec;
	}
	if (shift >= 0 && rtc_tick(guest, shift) != r->last_tick) {
		*c |= REG_C_PF;
		r->last_tick = rtc_tick(guest, shift);
	}
	if (*c & b & (REG_C_PF | REG_C_AF | REG_C_UF))
		*c |= REG_C_IRQF;
	if (!!(*c & REG_C_IRQF) != r->irq_level) {
		r->irq_level = !!(*c & REG_C_IRQF);
		irq_set(r->vm, RTC_IRQ, r->irq_level);
	}
	/* No timer while IRQF waits for the guest to read C: nothing new could be seen. */
	if (!(*c & REG_C_IRQF)) {
		if ((b & (REG_B_UIE | REG_B_AIE)) && !(b & REG_B_SET))
			next = (sec + 1) * NS - guest;
		if ((b & REG_B_PIE) && shift >= 0) {
			int64_t t = rtc_tick_ns(r->last_tick + 1, shift) - guest;

			if (!next || t < next)
				next = t;
		}
	}
	if (r->tfd >= 0)
		timerfd_arm_ns(r->tfd, next > 0 ? (uint64_t)next : next < 0 ? 1 : 0, 0);
}

static void rtc_timer(void *opaque, uint32_t events)
{
	struct rtc *r = opaque;
	uint64_t n;

	if (read(r->tfd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_guest("rtc: timerfd read: %s", strerror(errno));
	pthread_mutex_lock(&r->lock);
	rtc_catch_up(r, host_ns());
	pthread_mutex_unlock(&r->lock);
}

static uint8_t rtc_read(struct rtc *r, unsigned idx, int64_t host)
{
	int64_t guest = rtc_guest_ns(r, host);
	uint8_t v;

	if (rtc_is_time_reg(idx))
		return rtc_time_reg(r, idx, floor_div(guest, NS));
	switch (idx) {
	case RTC_REG_A:
		v = r->ram[RTC_REG_A] & (uint8_t)~REG_A_UIP;
		if (!(r->ram[RTC_REG_B] & REG_B_SET) &&
		    guest - floor_div(guest, NS) * NS >= NS - (int64_t)UIP_NS)
			v |= REG_A_UIP;
		return v;
	case RTC_REG_C: /* reading clears the flags and IRQF */
		v = r->ram[RTC_REG_C];
		r->ram[RTC_REG_C] = 0;
		return v;
	case RTC_REG_D:
		return REG_D_VRT;
	default:
		return r->ram[idx];
	}
}

static void rtc_write(struct rtc *r, unsigned idx, uint8_t v, int64_t host)
{
	if (rtc_is_time_reg(idx)) {
		rtc_set_time_reg(r, idx, v, host);
		return;
	}
	switch (idx) {
	case RTC_REG_A:
		r->ram[RTC_REG_A] = v & (uint8_t)~REG_A_UIP;
		break;
	case RTC_REG_B:
		if ((v & REG_B_SET) && !(r->ram[RTC_REG_B] & REG_B_SET)) {
			r->frozen_s = floor_div(rtc_guest_ns(r, host), NS);
			v &= (uint8_t)~REG_B_UIE; /* SET clears UIE */
		} else if (!(v & REG_B_SET) && (r->ram[RTC_REG_B] & REG_B_SET)) {
			r->offset_ns = r->frozen_s * NS - host; /* counting resumes now */
			r->last_sec = r->frozen_s;
		}
		r->ram[RTC_REG_B] = v;
		break;
	case RTC_REG_C:
	case RTC_REG_D: /* read-only */
		break;
	default:
		r->ram[idx] = v;
		break;
	}
}

static void rtc_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	struct rtc *r = opaque;
	int64_t host = host_ns();

	pthread_mutex_lock(&r->lock);
	rtc_catch_up(r, host);
	for (unsigned i = 0; i < size; i++) {
		if (off + i == 0) { /* the index register is write-only */
			if (is_write)
				r->index = data[i] & (uint8_t)~RTC_NMI_MASK;
			else
				data[i] = 0xff;
		} else if (off + i == 1) {
			if (is_write)
				rtc_write(r, r->index, data[i], host);
			else
				data[i] = rtc_read(r, r->index, host);
		} else if (!is_write) {
			data[i] = 0xff;
		}
	}
	rtc_catch_up(r, host);
	pthread_mutex_unlock(&r->lock);
}

int rtc_init(struct vm *vm)
{
	struct rtc *r = &rtc;
	int err;

	memset(r, 0, sizeof(*r));
	r->vm = vm;
	pthread_mutex_init(&r->lock, NULL);
	r->ram[RTC_REG_A] = 0x26; /* 32.768 kHz time base, 1024 Hz periodic rate */
	r->ram[RTC_REG_B] = REG_B_24H;
	r->last_sec = floor_div(host_ns(), NS);
	r->tfd = evloop_add_timer(&vm->loop, rtc_timer, r);
	if (r->tfd < 0) {
		err = r->tfd;
		r->tfd = -1;
		return err;
	}
	return bus_register(&vm->pio, RTC_INDEX, 2, rtc_io, r, "rtc");
}
