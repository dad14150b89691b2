/*
 * PCI bus 0 (PCI Local Bus Specification 3.0 ch. 6): configuration mechanism
 * #1 (§3.2.2.3.2), a host bridge, memory BARs in one window of the PCI hole,
 * INTx lines shared with a count per line, and MSI-X tables (§6.8.2).
 *
 * ring3 plays the firmware: it places every BAR, enables memory decoding and
 * fills in the Interrupt Line register, so a kernel that does not reassign
 * anything (the i386 guest with the 8259 only) finds working devices. A guest
 * may move BARs anywhere in the window; the whole window is one bus range,
 * decoded here, so the bus registry never changes after the VM is built.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../core/log.h"
#include "../core/vm.h"
#include "pci.h"

/*
 * INTx lines by slot: IRQs no PC device of ring3 uses, as a BIOS would pick
 * (not 5: the pv ABI's timer, abi.h PV_TIMER_IRQ, raises it as an edge).
 */
static const uint8_t intx_irq[] = { 10, 11, 7, 3, 14, 15 };

struct pci {
	struct vm *vm;
	pthread_mutex_t lock; /* configuration space, BAR placement */
	pthread_mutex_t intx_lock;
	uint32_t conf_addr;
	struct pci_dev *dev[PCI_SLOTS];
	int nr;
	uint32_t next_bar; /* firmware's BAR allocator */
	unsigned intx_count[24];
};

static struct pci *pci_of(struct vm *vm)
{
	return vm->pci;
}

static void put_le(uint8_t *p, uint32_t v, unsigned size)
{
	for (unsigned i = 0; i < size; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le(const uint8_t *p, unsigned size)
{
	uint32_t v = 0;

	for (unsigned i = 0; i < size; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

/* With the lock held: where each BAR decodes now, telling the device of moves. */
static void pci_update_bars(struct pci_dev *d)
{
	bool mem = get_le(&d->cfg[PCI_COMMAND], 2) & PCI_COMMAND_MEMORY;

	for (unsigned i = 0; i < 6; i++) {
		uint32_t addr = get_le(&d->cfg[PCI_BAR0 + 4 * i], 4) & ~0xfu, now = 0;

		if (!d->bar[i].size)
			continue;
		/* decoded only inside the window: elsewhere it could shadow RAM */
		if (mem && addr >= PCI_MMIO_BASE && addr - PCI_MMIO_BASE < PCI_MMIO_SIZE &&
		    d->bar[i].size <= PCI_MMIO_BASE + PCI_MMIO_SIZE - addr)
			now = addr;
		if (now != d->bar[i].mapped) {
			uint32_t old = d->bar[i].mapped;

			d->bar[i].mapped = now;
			if (d->bar_moved)
				d->bar_moved(d, i, old, now);
		}
	}
}

static void msix_cfg_written(struct pci_dev *d, unsigned off, unsigned size);

static uint32_t conf_read(struct pci_dev *d, unsigned off, unsigned size)
{
	if (off + size > 256)
		return 0xffffffffu;
	return get_le(&d->cfg[off], size);
}

static void conf_write(struct pci_dev *d, unsigned off, unsigned size, uint32_t v)
{
	if (off + size > 256)
		return;
	for (unsigned i = 0; i < size; i++) {
		uint8_t b = (uint8_t)(v >> (8 * i)), m = d->wmask[off + i];

		d->cfg[off + i] = (uint8_t)((d->cfg[off + i] & ~m) | (b & m));
	}
	if (off < PCI_BAR0 + 24 && off + size > PCI_COMMAND)
		pci_update_bars(d);
	msix_cfg_written(d, off, size);
	if (d->cfg_written)
		d->cfg_written(d, off, size);
}

uint32_t pci_conf_read(struct vm *vm, unsigned slot, unsigned off, unsigned size)
{
	struct pci *p = pci_of(vm);
	uint32_t v = 0xffffffffu >> (32 - 8 * size);

	pthread_mutex_lock(&p->lock);
	if (slot < PCI_SLOTS && p->dev[slot])
		v = conf_read(p->dev[slot], off, size);
	pthread_mutex_unlock(&p->lock);
	return v;
}

void pci_conf_write(struct vm *vm, unsigned slot, unsigned off, unsigned size, uint32_t v)
{
	struct pci *p = pci_of(vm);

	pthread_mutex_lock(&p->lock);
	if (slot < PCI_SLOTS && p->dev[slot])
		conf_write(p->dev[slot], off, size, v);
	pthread_mutex_unlock(&p->lock);
}

/* 0xcf8: only a 32-bit access is the address register (0xcf9 is the reset port). */
static void conf1_addr_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	struct pci *p = opaque;

	if (size != 4) {
		if (!is_write)
			memset(data, 0xff, size);
		return;
	}
	pthread_mutex_lock(&p->lock);
	if (is_write)
		p->conf_addr = get_le(data, 4) & 0x80fffffcu;
	else
		put_le(data, p->conf_addr, 4);
	pthread_mutex_unlock(&p->lock);
}

static void conf1_data_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	struct pci *p = opaque;
	struct pci_dev *d = NULL;
	unsigned bus, slot, fn, reg;

	if (size > 4 || off + size > 4)
		size = 4 - (unsigned)off;
	pthread_mutex_lock(&p->lock);
	bus = (p->conf_addr >> 16) & 0xff;
	slot = (p->conf_addr >> 11) & 0x1f;
	fn = (p->conf_addr >> 8) & 7;
	reg = (p->conf_addr & 0xfc) + (unsigned)off;
	if ((p->conf_addr & 0x80000000u) && bus == 0 && fn == 0)
		d = p->dev[slot];
	if (!d) {
		if (!is_write)
			memset(data, 0xff, size); /* no device: master abort */
	} else if (is_write) {
		conf_write(d, reg, size, get_le(data, size));
	} else {
		put_le(data, conf_read(d, reg, size), size);
	}
	pthread_mutex_unlock(&p->lock);
}

/* The BAR window: find the BAR, then call its device without our lock. */
static void window_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	struct pci *p = opaque;
	uint64_t addr = PCI_MMIO_BASE + off;
	bus_fn fn = NULL;
	void *fopaque = NULL;
	uint64_t boff = 0;

	pthread_mutex_lock(&p->lock);
	for (int s = 0; s < PCI_SLOTS && !fn; s++) {
		struct pci_dev *d = p->dev[s];

		for (unsigned i = 0; d && i < 6; i++) {
			if (d->bar[i].mapped && addr >= d->bar[i].mapped &&
			    addr - d->bar[i].mapped < d->bar[i].size) {
				fn = d->bar[i].fn;
				fopaque = d->bar[i].opaque;
				boff = addr - d->bar[i].mapped;
				break;
			}
		}
	}
	pthread_mutex_unlock(&p->lock);
	if (fn)
		fn(fopaque, boff, data, size, is_write);
	else if (!is_write)
		memset(data, 0xff, size);
}

static struct pci_dev *dev_alloc(struct pci *p, uint16_t vendor, uint16_t device,
				 uint32_t class_code, uint8_t revision)
{
	struct pci_dev *d;

	if (p->nr == PCI_SLOTS)
		return NULL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->vm = p->vm;
	d->slot = (unsigned)p->nr;
	put_le(&d->cfg[PCI_VENDOR_ID], vendor, 2);
	put_le(&d->cfg[PCI_DEVICE_ID], device, 2);
	put_le(&d->cfg[PCI_CLASS_REVISION], class_code << 8 | revision, 4);
	put_le(&d->wmask[PCI_COMMAND], PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
					 PCI_COMMAND_INTX_DISABLE, 2);
	d->wmask[PCI_INTERRUPT_LINE] = 0xff;
	p->dev[p->nr++] = d;
	return d;
}

struct pci_dev *pci_dev_new(struct vm *vm, uint16_t vendor, uint16_t device, uint32_t class_code,
			    uint8_t revision, uint16_t subsys_vendor, uint16_t subsys)
{
	struct pci *p = pci_of(vm);
	struct pci_dev *d;

	if (!p)
		return NULL;
	d = dev_alloc(p, vendor, device, class_code, revision);
	if (!d)
		return NULL;
	put_le(&d->cfg[PCI_SUBSYSTEM_VENDOR_ID], subsys_vendor, 2);
	put_le(&d->cfg[PCI_SUBSYSTEM_ID], subsys, 2);
	d->gsi = intx_irq[(d->slot - 1) % sizeof(intx_irq)];
	d->cfg[PCI_INTERRUPT_LINE] = (uint8_t)d->gsi;
	d->cfg[PCI_INTERRUPT_PIN] = 1; /* INTA# */
	put_le(&d->cfg[PCI_COMMAND], PCI_COMMAND_MEMORY, 2);
	return d;
}

int pci_bar_set(struct pci_dev *d, unsigned bar, uint32_t size, bus_fn fn, void *opaque)
{
	struct pci *p = pci_of(d->vm);
	uint32_t addr;

	if (bar >= 6 || size < 4096 || (size & (size - 1)))
		return -EINVAL;
	addr = (p->next_bar + size - 1) & ~(size - 1);
	if (addr - PCI_MMIO_BASE + (uint64_t)size > PCI_MMIO_SIZE)
		return -ENOSPC;
	p->next_bar = addr + size;
	d->bar[bar].size = size;
	d->bar[bar].fn = fn;
	d->bar[bar].opaque = opaque;
	put_le(&d->cfg[PCI_BAR0 + 4 * bar], addr, 4); /* 32-bit memory, not prefetchable */
	put_le(&d->wmask[PCI_BAR0 + 4 * bar], ~(size - 1), 4);
	pthread_mutex_lock(&p->lock);
	pci_update_bars(d);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

unsigned pci_cap_add(struct pci_dev *d, uint8_t id, const void *body, unsigned len)
{
	unsigned off = d->cap_free ? d->cap_free : 0x40;

	if (off + 2 + len > 256)
		return 0;
	if (d->cap_last)
		d->cfg[d->cap_last + 1] = (uint8_t)off;
	else
		d->cfg[PCI_CAPABILITY_LIST] = (uint8_t)off;
	d->cfg[off] = id;
	d->cfg[off + 1] = 0;
	memcpy(&d->cfg[off + 2], body, len);
	d->cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
	d->cap_last = off;
	d->cap_free = (off + 2 + len + 3) & ~3u;
	return off;
}

/*
 * INTx: level-triggered and shareable, so a line is high while any device
 * on it is. A device with INTx disabled in its command register keeps quiet
 * (PCI 3.0 §6.2.2), and the Interrupt Status bit shows what it would say.
 */
void pci_intx(struct pci_dev *d, int level)
{
	struct pci *p = pci_of(d->vm);
	bool raise = false, lower = false;

	pthread_mutex_lock(&p->intx_lock);
	if (level)
		d->cfg[PCI_STATUS] |= PCI_STATUS_INTERRUPT;
	else
		d->cfg[PCI_STATUS] &= (uint8_t)~PCI_STATUS_INTERRUPT;
	if (get_le(&d->cfg[PCI_COMMAND], 2) & PCI_COMMAND_INTX_DISABLE)
		level = 0;
	level = !!level;
	if (level != d->intx) {
		d->intx = level;
		if (level)
			raise = p->intx_count[d->gsi]++ == 0;
		else
			lower = --p->intx_count[d->gsi] == 0;
		if (raise || lower)
			irq_set(d->vm, d->gsi, raise);
	}
	pthread_mutex_unlock(&p->intx_lock);
}

/* MSI-X (PCI 3.0 §6.8.2): the capability's Message Control, the table and the PBA. */
static uint16_t msix_ctrl(struct pci_dev *d)
{
	return (uint16_t)get_le(&d->cfg[d->msix->cap + 2], 2);
}

static bool msix_masked(struct pci_dev *d, unsigned v)
{
	return (msix_ctrl(d) & MSIX_FUNC_MASK) || (d->msix->table[v][3] & 1);
}

/* With msix->lock held: deliver what became unmasked. */
static void msix_deliver_pending(struct pci_dev *d)
{
	struct pci_msix *m = d->msix;

	if (!(msix_ctrl(d) & MSIX_ENABLE))
		return;
	for (unsigned v = 0; v < m->nr; v++) {
		if ((m->pending >> v & 1) && !msix_masked(d, v)) {
			m->pending &= ~(1ull << v);
			vm_msi_fire(&m->msi[v]);
		}
	}
}

static void msix_cfg_written(struct pci_dev *d, unsigned off, unsigned size)
{
	if (d->msix && off < d->msix->cap + 4u && off + size > d->msix->cap + 2u) {
		pthread_mutex_lock(&d->msix->lock);
		msix_deliver_pending(d);
		pthread_mutex_unlock(&d->msix->lock);
	}
}

int pci_msix_init(struct pci_dev *d, unsigned nr, unsigned bar, uint32_t table_off,
		  uint32_t pba_off)
{
	const struct cpu_engine *e = d->vm->engine;
	struct pci_msix *m;
	uint8_t body[10];

	if (nr == 0 || nr > MSIX_MAX)
		return -EINVAL;
	/*
	 * MSI-X is optional (§6.8): an engine that cannot deliver an MSI (bt:
	 * no LAPIC) gets a device without the capability, and the guest uses
	 * INTx. Offering it anyway makes Linux try it first and WARN when its
	 * APIC-less x86 has no MSI domain (drivers/pci/msi/msi.h).
	 */
	if (!e->msi && !(e->msi_route && e->irqfd))
		return 0;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	m->nr = nr;
	for (unsigned v = 0; v < nr; v++) {
		m->table[v][3] = 1; /* masked at reset */
		vm_msi_init(d->vm, &m->msi[v]);
	}
	put_le(body, nr - 1, 2);
	put_le(body + 2, table_off | bar, 4);
	put_le(body + 6, pba_off | bar, 4);
	m->cap = pci_cap_add(d, PCI_CAP_ID_MSIX, body, sizeof(body));
	if (!m->cap) {
		free(m);
		return -ENOSPC;
	}
	d->wmask[m->cap + 3] = (MSIX_ENABLE | MSIX_FUNC_MASK) >> 8;
	d->msix = m;
	return 0;
}

void pci_msix_table_io(struct pci_dev *d, uint64_t off, uint8_t *data, unsigned size,
		       bool is_write)
{
	struct pci_msix *m = d->msix;
	unsigned v = (unsigned)(off / 16), w = (unsigned)(off % 16) / 4;

	/* §6.8.2: dword or qword accesses, naturally aligned */
	if (!m || v >= m->nr || (size != 4 && size != 8) || off % size) {
		if (!is_write)
			memset(data, 0xff, size);
		return;
	}
	pthread_mutex_lock(&m->lock);
	for (unsigned i = 0; i < size / 4; i++, w++) {
		if (!is_write) {
			put_le(data + 4 * i, m->table[v][w], 4);
			continue;
		}
		m->table[v][w] = get_le(data + 4 * i, 4);
		if (w == 3)
			m->table[v][3] &= 1;
	}
	if (is_write) {
		vm_msi_set(&m->msi[v], (uint64_t)m->table[v][1] << 32 | m->table[v][0],
			   m->table[v][2]);
		msix_deliver_pending(d);
	}
	pthread_mutex_unlock(&m->lock);
}

void pci_msix_pba_io(struct pci_dev *d, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	struct pci_msix *m = d->msix;
	uint64_t v;

	if (is_write) /* read-only */
		return;
	memset(data, 0, size);
	if (!m || off >= 8)
		return;
	pthread_mutex_lock(&m->lock);
	v = m->pending >> (8 * off);
	pthread_mutex_unlock(&m->lock);
	for (unsigned i = 0; i < size && off + i < 8; i++)
		data[i] = (uint8_t)(v >> (8 * i));
}

bool pci_msix_enabled(struct pci_dev *d)
{
	return d->msix && (msix_ctrl(d) & MSIX_ENABLE);
}

void pci_msix_notify(struct pci_dev *d, unsigned vector)
{
	struct pci_msix *m = d->msix;

	if (!m || vector >= m->nr)
		return;
	pthread_mutex_lock(&m->lock);
	if (msix_masked(d, vector))
		m->pending |= 1ull << vector;
	else
		vm_msi_fire(&m->msi[vector]);
	pthread_mutex_unlock(&m->lock);
}

int pci_init(struct vm *vm)
{
	struct pci *p = calloc(1, sizeof(*p));
	struct pci_dev *host;
	int err;

	if (!p)
		return -ENOMEM;
	p->vm = vm;
	p->next_bar = (uint32_t)PCI_MMIO_BASE;
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->intx_lock, NULL);
	vm->pci = p;
	/* 00:00.0, the i440FX host bridge, which Linux's conf1 sanity check looks for */
	host = dev_alloc(p, 0x8086, 0x1237, 0x060000, 2);
	if (!host)
		return -ENOMEM;
	err = bus_register(&vm->pio, PCI_CONF1_ADDR, 1, conf1_addr_io, p, "pci conf addr");
	if (!err)
		err = bus_register(&vm->pio, PCI_CONF1_DATA, 4, conf1_data_io, p, "pci conf data");
	if (!err)
		err = bus_register(&vm->mmio, PCI_MMIO_BASE, PCI_MMIO_SIZE, window_io, p, "pci bars");
	return err;
}

void pci_destroy(struct vm *vm)
{
	struct pci *p = pci_of(vm);

	if (!p)
		return;
	for (int s = 0; s < p->nr; s++) {
		struct pci_dev *d = p->dev[s];

		if (d->msix) {
			for (unsigned v = 0; v < d->msix->nr; v++)
				vm_msi_destroy(&d->msix->msi[v]);
			free(d->msix);
		}
		free(d);
	}
	free(p);
	vm->pci = NULL;
}

/*
 * The PCI root for the ACPI DSDT (ACPI 6.4 §6.1, §6.4 and §20): under ACPI,
 * Linux finds PCI only through a PNP0A03 device, and takes its windows from
 * _CRS. Its _PRT (§6.2.13) gives every slot's INTA# as a hard-wired GSI, the
 * same IRQ ring3 writes into the Interrupt Line register: the guest of an
 * engine without MSI (bt: the 8259 alone, GSI = ISA IRQ) needs INTx, and
 * without a _PRT Linux warns "can't derive routing for PCI INT A" for each
 * device before falling back to that register. Hard-wired means level-
 * triggered, active-low: Linux sets the 8259's ELCR bit for the line, or
 * programs the IOAPIC pin so, exactly what it did in its fallback.
 *
 *   Device (PCI0) {
 *     Name (_HID, EisaId ("PNP0A03"))
 *     Name (_UID, Zero)
 *     Name (_CRS, ResourceTemplate () {
 *       WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, 0, 0, 0, 1)
 *       IO (Decode16, 0x0CF8, 0x0CF8, 1, 8)
 *       WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,
 *               0, 0x0000, 0x0CF7, 0, 0x0CF8)
 *       WordIO (..., 0, 0x0D00, 0xFFFF, 0, 0xF300)
 *       DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable,
 *                    ReadWrite, 0, PCI_MMIO_BASE, PCI_MMIO_BASE + PCI_MMIO_SIZE - 1, 0,
 *                    PCI_MMIO_SIZE)
 *     })
 *     Name (_PRT, Package () {
 *       Package () { 0x0001FFFF, 0, Zero, 10 },    (slot 1, INTA#, GSI 10)
 *       …                                          (slots 1 to 31)
 *     })
 *   }
 */
static size_t aml_pkglen(uint8_t *p, size_t body)
{
	/* PkgLength counts itself: one byte up to 63, else two (§20.2.4) */
	if (body + 1 <= 63) {
		p[0] = (uint8_t)(body + 1);
		return 1;
	}
	p[0] = (uint8_t)(0x40 | ((body + 2) & 0xf));
	p[1] = (uint8_t)((body + 2) >> 4);
	return 2;
}

size_t pci_dsdt_aml(uint8_t *out, size_t room)
{
	uint32_t lo = (uint32_t)PCI_MMIO_BASE, hi = (uint32_t)(PCI_MMIO_BASE + PCI_MMIO_SIZE - 1),
		 len = (uint32_t)PCI_MMIO_SIZE;
	const uint8_t crs[] = {
		0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, /* bus 0 */
		0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08,		     /* 0xcf8-0xcff */
		0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0, 0, 0x00, 0x00, 0xf7, 0x0c, 0, 0, 0xf8, 0x0c,
		0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0, 0, 0x00, 0x0d, 0xff, 0xff, 0, 0, 0x00, 0xf3,
		0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0, 0, 0, 0,
		(uint8_t)lo, (uint8_t)(lo >> 8), (uint8_t)(lo >> 16), (uint8_t)(lo >> 24),
		(uint8_t)hi, (uint8_t)(hi >> 8), (uint8_t)(hi >> 16), (uint8_t)(hi >> 24),
		0, 0, 0, 0,
		(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24),
		0x79, 0x00, /* end tag */
	};
	static const uint8_t hid_uid[] = {
		'P', 'C', 'I', '0',
		0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x03, /* EisaId PNP0A03 */
		0x08, '_', 'U', 'I', 'D', 0x00,
	};
	uint8_t body[640], buf[160];
	size_t n = 0, b = 0;
	uint8_t prt[PCI_SLOTS * 12];
	size_t np = 0;

	/* Name (_CRS, Buffer (size) { … }) */
	buf[b++] = 0x0a; /* BufferSize as a byte */
	buf[b++] = (uint8_t)sizeof(crs);
	memcpy(buf + b, crs, sizeof(crs));
	b += sizeof(crs);
	memcpy(body, hid_uid, sizeof(hid_uid));
	n = sizeof(hid_uid);
	memcpy(body + n, "\x08_CRS\x11", 6);
	n += 6;
	n += aml_pkglen(body + n, b);
	memcpy(body + n, buf, b);
	n += b;
	/*
	 * Name (_PRT, Package (31) { … }): each entry PackageOp, PkgLength 11,
	 * four elements: DWordConst address (device << 16 | 0xffff: any
	 * function), ZeroOp pin (INTA#), ZeroOp source (a GSI, no link device),
	 * BytePrefix GSI.
	 */
	for (unsigned s = 1; s < PCI_SLOTS; s++) {
		const uint8_t e[] = {
			0x12, 0x0b, 0x04, 0x0c, 0xff, 0xff, (uint8_t)s, 0x00, 0x00, 0x00,
			0x0a, intx_irq[(s - 1) % sizeof(intx_irq)],
		};

		memcpy(prt + np, e, sizeof(e));
		np += sizeof(e);
	}
	memcpy(body + n, "\x08_PRT\x12", 6);
	n += 6;
	n += aml_pkglen(body + n, np + 1);
	body[n++] = PCI_SLOTS - 1;
	memcpy(body + n, prt, np);
	n += np;
	/* DeviceOp (ExtOpPrefix 0x5b, 0x82) PkgLength body */
	if (n + 4 > room)
		return 0;
	out[0] = 0x5b;
	out[1] = 0x82;
	b = 2 + aml_pkglen(out + 2, n);
	memcpy(out + b, body, n);
	return b + n;
}
