/*
 * The i8042 keyboard controller at 0x60/0x64 and System Control Port A at
 * 0x92. Follows IBM's PS/2 Hardware Interface Technical Reference (keyboard
 * and auxiliary device controller) and what Linux's serio/i8042.c, atkbd.c
 * and psmouse probe for.
 */

/*
 * A PS/2 keyboard and mouse sit on the two ports; they answer commands but
 * never send input (the console is the UART). A20 is never actually masked:
 * its bits only read back. A pulse on the reset line (command 0xfe, an
 * output-port write with bit 0 clear, or 0x92 bit 0) ends the VM.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "../core/log.h"
#include "../core/vm.h"
#include "dev.h"

#define I8042_DATA 0x60
#define I8042_CMD 0x64 /* status register when read */
#define PORT_A 0x92    /* System Control Port A */
#define KBD_IRQ 1
#define AUX_IRQ 12

/* Status register */
#define STR_OBF 0x01	 /* output buffer full */
#define STR_IBF 0x02	 /* input buffer full: never, we take bytes at once */
#define STR_SYSFLAG 0x04 /* the command byte's SYS bit */
#define STR_CMDDAT 0x08	 /* the last write went to 0x64 */
#define STR_KEYLOCK 0x10 /* keyboard not inhibited */
#define STR_AUXDATA 0x20 /* the output buffer holds a byte from the AUX port */

/* Command byte (controller RAM byte 0) */
#define CTR_KBDINT 0x01 /* IRQ 1 when a keyboard byte is in the output buffer */
#define CTR_AUXINT 0x02 /* IRQ 12 for an AUX byte */
#define CTR_SYSFLAG 0x04
#define CTR_KBDDIS 0x10
#define CTR_AUXDIS 0x20
#define CTR_XLATE 0x40 /* translate scan set 2 to set 1 */

/* Controller commands (writes to 0x64) */
#define CMD_READ_RAM 0x20  /* 0x20-0x3f: read RAM byte n (0 is the command byte) */
#define CMD_WRITE_RAM 0x60 /* 0x60-0x7f: write RAM byte n, with the next data byte */
#define CMD_AUX_DISABLE 0xa7
#define CMD_AUX_ENABLE 0xa8
#define CMD_AUX_TEST 0xa9 /* -> 0x00: interface OK */
#define CMD_SELF_TEST 0xaa /* -> 0x55 */
#define CMD_KBD_TEST 0xab  /* -> 0x00 */
#define CMD_KBD_DISABLE 0xad
#define CMD_KBD_ENABLE 0xae
#define CMD_READ_INPUT 0xc0
#define CMD_READ_OUTPUT 0xd0
#define CMD_WRITE_OUTPUT 0xd1
#define CMD_KBD_LOOP 0xd2 /* next data byte comes back as if from the keyboard */
#define CMD_AUX_LOOP 0xd3 /* ... as if from the AUX device */
#define CMD_AUX_SEND 0xd4 /* next data byte goes to the AUX device */
#define CMD_A20_OFF 0xdd
#define CMD_A20_ON 0xdf
#define CMD_READ_TEST 0xe0
#define CMD_PULSE 0xf0 /* 0xf0-0xff: pulse output lines whose bit is 0; bit 0 is reset */

/* Output port */
#define OUT_RESET 0x01 /* 0 holds the CPU in reset */
#define OUT_A20 0x02
#define OUT_KBD_OBF 0x10
#define OUT_AUX_OBF 0x20

/* PS/2 device replies */
#define PS2_ACK 0xfa
#define PS2_RESEND 0xfe
#define PS2_BAT_OK 0xaa
#define PS2_ECHO 0xee

#define PORTA_RESET 0x01
#define PORTA_A20 0x02

#define QUEUE_SIZE 32

struct i8042 {
	struct vm *vm;
	pthread_mutex_t lock;
	uint8_t ram[32]; /* ram[0] is the command byte */
	uint8_t status_cmd; /* STR_CMDDAT */
	uint8_t out_port, port_a;
	uint8_t pending;     /* a controller command waiting for its data byte */
	uint8_t kbd_pending, aux_pending; /* a device command waiting for its argument */
	uint8_t q[QUEUE_SIZE];
	bool q_aux[QUEUE_SIZE];
	unsigned q_head, q_count;
	uint8_t last; /* the output buffer keeps its byte after a read */
	int kbd_level, aux_level;
};

static struct i8042 kbc;

static void i8042_push(struct i8042 *k, uint8_t v, bool aux)
{
	unsigned tail = (k->q_head + k->q_count) % QUEUE_SIZE;

	if (k->q_count == QUEUE_SIZE)
		return; /* a guest that never reads loses bytes, as with a real buffer */
	k->q[tail] = v;
	k->q_aux[tail] = aux;
	k->q_count++;
}

static void i8042_set_irqs(struct i8042 *k, int kbd, int aux)
{
	if (kbd != k->kbd_level)
		irq_set(k->vm, KBD_IRQ, kbd);
	if (aux != k->aux_level)
		irq_set(k->vm, AUX_IRQ, aux);
	k->kbd_level = kbd;
	k->aux_level = aux;
}

/* The output buffer's byte raises IRQ 1 or 12 while it waits, if enabled. */
static void i8042_update_irq(struct i8042 *k)
{
	bool full = k->q_count, aux = full && k->q_aux[k->q_head];

	i8042_set_irqs(k, full && !aux && (k->ram[0] & CTR_KBDINT),
		       aux && (k->ram[0] & CTR_AUXINT));
}

static void i8042_reset_line(struct i8042 *k, const char *why)
{
	vm_request_exit(k->vm, 0, "guest reset (%s)", why);
}

/* A PS/2 MF2 keyboard: acknowledges everything, identifies, passes BAT. */
static void kbd_write(struct i8042 *k, uint8_t v)
{
	bool xlate = k->ram[0] & CTR_XLATE;

	if (k->kbd_pending) {
		uint8_t cmd = k->kbd_pending;

		k->kbd_pending = 0;
		i8042_push(k, PS2_ACK, false);
		if (cmd == 0xf0 && v == 0) /* get scan code set: 2, translated */
			i8042_push(k, xlate ? 0x41 : 0x02, false);
		return;
	}
	switch (v) {
	case 0xff: /* reset */
		i8042_push(k, PS2_ACK, false);
		i8042_push(k, PS2_BAT_OK, false);
		break;
	case 0xf2: /* identify */
		i8042_push(k, PS2_ACK, false);
		i8042_push(k, 0xab, false);
		i8042_push(k, xlate ? 0x41 : 0x83, false);
		break;
	case 0xed: /* set LEDs */
	case 0xf0: /* scan code set */
	case 0xf3: /* typematic rate */
		k->kbd_pending = v;
		i8042_push(k, PS2_ACK, false);
		break;
	case 0xee:
		i8042_push(k, PS2_ECHO, false);
		break;
	case 0xf4: /* enable, disable, defaults, set-3 key types, resend */
	case 0xf5:
	case 0xf6:
	case 0xf7:
	case 0xf8:
	case 0xf9:
	case 0xfa:
	case 0xfb:
	case 0xfc:
	case 0xfd:
	case 0xfe:
		i8042_push(k, PS2_ACK, false);
		break;
	default:
		i8042_push(k, PS2_RESEND, false);
		break;
	}
}

/* A standard PS/2 mouse (ID 0) that never moves. */
static void aux_write(struct i8042 *k, uint8_t v)
{
	static const uint8_t status[] = { PS2_ACK, 0x00, 0x02, 0x64 };
	static const uint8_t packet[] = { PS2_ACK, 0x08, 0x00, 0x00 };

	if (k->aux_pending) {
		k->aux_pending = 0;
		i8042_push(k, PS2_ACK, true);
		return;
	}
	switch (v) {
	case 0xff: /* reset: BAT and ID */
		i8042_push(k, PS2_ACK, true);
		i8042_push(k, PS2_BAT_OK, true);
		i8042_push(k, 0x00, true);
		break;
	case 0xf2: /* get device ID */
		i8042_push(k, PS2_ACK, true);
		i8042_push(k, 0x00, true);
		break;
	case 0xe9: /* status request */
		for (size_t i = 0; i < sizeof(status); i++)
			i8042_push(k, status[i], true);
		break;
	case 0xeb: /* read data */
		for (size_t i = 0; i < sizeof(packet); i++)
			i8042_push(k, packet[i], true);
		break;
	case 0xe8: /* set resolution */
	case 0xf3: /* set sample rate */
		k->aux_pending = v;
		i8042_push(k, PS2_ACK, true);
		break;
	case 0xe6: /* scaling, stream/remote/wrap modes, enable, disable, defaults */
	case 0xe7:
	case 0xea:
	case 0xec:
	case 0xee:
	case 0xf0:
	case 0xf4:
	case 0xf5:
	case 0xf6:
		i8042_push(k, PS2_ACK, true);
		break;
	default:
		i8042_push(k, PS2_RESEND, true);
		break;
	}
}

static void i8042_write_output(struct i8042 *k, uint8_t v)
{
	k->out_port = v;
	if (!(v & OUT_RESET))
		i8042_reset_line(k, "i8042 output port");
}

static void i8042_data_write(struct i8042 *k, uint8_t v)
{
	uint8_t cmd = k->pending;

	k->status_cmd = 0;
	k->pending = 0;
	if (cmd >= CMD_WRITE_RAM && cmd < CMD_WRITE_RAM + 32) {
		k->ram[cmd - CMD_WRITE_RAM] = v;
		return;
	}
	switch (cmd) {
	case CMD_WRITE_OUTPUT:
		i8042_write_output(k, v);
		break;
	case CMD_KBD_LOOP:
		i8042_push(k, v, false);
		break;
	case CMD_AUX_LOOP:
		i8042_push(k, v, true);
		break;
	case CMD_AUX_SEND:
		aux_write(k, v);
		break;
	default:
		kbd_write(k, v);
		break;
	}
}

static void i8042_command(struct i8042 *k, uint8_t cmd)
{
	k->status_cmd = STR_CMDDAT;
	k->pending = 0;
	if (cmd >= CMD_READ_RAM && cmd < CMD_READ_RAM + 32) {
		i8042_push(k, k->ram[cmd - CMD_READ_RAM], false);
		return;
	}
	if ((cmd >= CMD_WRITE_RAM && cmd < CMD_WRITE_RAM + 32) || cmd == CMD_WRITE_OUTPUT ||
	    cmd == CMD_KBD_LOOP || cmd == CMD_AUX_LOOP || cmd == CMD_AUX_SEND) {
		k->pending = cmd;
		return;
	}
	if (cmd >= CMD_PULSE) {
		if (!(cmd & OUT_RESET))
			i8042_reset_line(k, "i8042");
		return;
	}
	switch (cmd) {
	case CMD_AUX_DISABLE:
		k->ram[0] |= CTR_AUXDIS;
		break;
	case CMD_AUX_ENABLE:
		k->ram[0] &= (uint8_t)~CTR_AUXDIS;
		break;
	case CMD_KBD_DISABLE:
		k->ram[0] |= CTR_KBDDIS;
		break;
	case CMD_KBD_ENABLE:
		k->ram[0] &= (uint8_t)~CTR_KBDDIS;
		break;
	case CMD_AUX_TEST:
	case CMD_KBD_TEST:
		i8042_push(k, 0x00, false);
		break;
	case CMD_SELF_TEST:
		i8042_push(k, 0x55, false);
		break;
	case CMD_READ_INPUT:
		i8042_push(k, 0x80, false); /* keyboard not inhibited */
		break;
	case CMD_READ_OUTPUT:
		i8042_push(k, (uint8_t)(k->out_port | (k->kbd_level ? OUT_KBD_OBF : 0) |
					(k->aux_level ? OUT_AUX_OBF : 0)),
			   false);
		break;
	case CMD_READ_TEST:
		i8042_push(k, 0x00, false);
		break;
	case CMD_A20_OFF:
		k->out_port &= (uint8_t)~OUT_A20;
		break;
	case CMD_A20_ON:
		k->out_port |= OUT_A20;
		break;
	default:
		log_guest("i8042: unknown controller command %#x", cmd);
		break;
	}
}

static uint8_t i8042_status(struct i8042 *k)
{
	uint8_t s = STR_KEYLOCK | k->status_cmd | (k->ram[0] & CTR_SYSFLAG ? STR_SYSFLAG : 0);

	if (k->q_count)
		s |= STR_OBF | (k->q_aux[k->q_head] ? STR_AUXDATA : 0);
	return s;
}

static uint8_t i8042_data_read(struct i8042 *k)
{
	if (k->q_count) {
		k->last = k->q[k->q_head];
		k->q_head = (k->q_head + 1) % QUEUE_SIZE;
		k->q_count--;
		/* The line drops with OBF; the next byte raises it again: a new edge. */
		i8042_set_irqs(k, 0, 0);
	}
	return k->last;
}

static void i8042_io(struct i8042 *k, bool cmd_port, uint8_t *data, unsigned size, bool is_write)
{
	pthread_mutex_lock(&k->lock);
	/* 0x61-0x63 and 0x65-0x67 are not ours: a wide access touches only its first byte. */
	if (is_write) {
		if (cmd_port)
			i8042_command(k, data[0]);
		else
			i8042_data_write(k, data[0]);
	} else {
		data[0] = cmd_port ? i8042_status(k) : i8042_data_read(k);
		memset(data + 1, 0xff, size - 1);
	}
	i8042_update_irq(k);
	pthread_mutex_unlock(&k->lock);
}

static void i8042_data_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	i8042_io(opaque, false, data, size, is_write);
}

static void i8042_cmd_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	i8042_io(opaque, true, data, size, is_write);
}

static void porta_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	struct i8042 *k = opaque;

	pthread_mutex_lock(&k->lock);
	if (is_write) {
		k->port_a = data[0] & (uint8_t)~PORTA_RESET;
		if (data[0] & PORTA_RESET) /* fast reset: reads back 0, so any 1 is an edge */
			i8042_reset_line(k, "port 0x92");
	} else {
		data[0] = k->port_a;
		memset(data + 1, 0xff, size - 1);
	}
	pthread_mutex_unlock(&k->lock);
}

int i8042_init(struct vm *vm)
{
	struct i8042 *k = &kbc;
	int err;

	memset(k, 0, sizeof(*k));
	k->vm = vm;
	pthread_mutex_init(&k->lock, NULL);
	/* As a BIOS leaves it: both ports enabled with interrupts, translation on. */
	k->ram[0] = CTR_KBDINT | CTR_AUXINT | CTR_SYSFLAG | CTR_XLATE;
	k->out_port = OUT_RESET | OUT_A20;
	k->port_a = PORTA_A20;
	err = bus_register(&vm->pio, I8042_DATA, 1, i8042_data_io, k, "i8042-data");
	if (!err)
		err = bus_register(&vm->pio, I8042_CMD, 1, i8042_cmd_io, k, "i8042-cmd");
	if (!err)
		err = bus_register(&vm->pio, PORT_A, 1, porta_io, k, "port-a");
	return err;
}
