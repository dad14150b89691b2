/*
 * A small printf for the serial console, and the few string functions GCC
 * may call even in freestanding code (it emits memset/memcpy for struct
 * copies and clears). No hardware here beyond serial_putc().
 */
#include <stdarg.h>
#include "kernel.h"

void kputs(const char *s)
{
	while (*s)
		serial_putc(*s++);
}

static void put_num(uint64_t v, unsigned base, int width, char pad)
{
	char buf[24];
	int n = 0;

	do {
		buf[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (width-- > n)
		serial_putc(pad);
	while (n)
		serial_putc(buf[--n]);
}

/* Supports %s %c %d %u %x %llu %llx and %%, with a width and a 0 flag. */
void kprintf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			serial_putc(*fmt);
			continue;
		}
		fmt++;
		char pad = ' ';
		int width = 0, longs = 0;
		if (*fmt == '0')
			pad = '0', fmt++;
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l')
			longs++, fmt++;
		uint64_t v;
		switch (*fmt) {
		case 's':
			kputs(va_arg(ap, const char *));
			break;
		case 'c':
			serial_putc((char)va_arg(ap, int));
			break;
		case 'd': {
			int32_t d = va_arg(ap, int32_t);
			if (d < 0)
				serial_putc('-');
			put_num(d < 0 ? -(int64_t)d : d, 10, width, pad);
			break;
		}
		case 'u':
		case 'x':
			v = longs >= 2 ? va_arg(ap, uint64_t) : va_arg(ap, uint32_t);
			put_num(v, *fmt == 'u' ? 10 : 16, width, pad);
			break;
		case '%':
			serial_putc('%');
			break;
		default:
			serial_putc('?');
			break;
		}
	}
	va_end(ap);
}

void *memset(void *d, int c, size_t n)
{
	void *ret = d;
	asm volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
	return ret;
}

void *memcpy(void *d, const void *s, size_t n)
{
	void *ret = d;
	asm volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
	return ret;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *p = a, *q = b;
	for (; n; n--, p++, q++)
		if (*p != *q)
			return *p - *q;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}
