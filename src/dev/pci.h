/*
 * A conventional PCI bus 0 (PCI Local Bus 3.0): configuration mechanism #1 at
 * 0xcf8/0xcfc, a host bridge at 00:00.0, 32-bit memory BARs placed in a
 * window of the PCI hole, INTx lines, and the MSI-X capability (§6.8.2).
 */
#ifndef RING3_DEV_PCI_H
#define RING3_DEV_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/bus.h"
#include "../core/notify.h"

/* The window BARs live in; the ACPI tables (a PCI root's _CRS) must say the same. */
#define PCI_MMIO_BASE 0xC0000000ull
#define PCI_MMIO_SIZE 0x20000000ull
#define PCI_CONF1_ADDR 0xcf8
#define PCI_CONF1_DATA 0xcfc
#define PCI_SLOTS 32

/* Configuration space registers (type 0 header) */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_CLASS_REVISION 0x08
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_SUBSYSTEM_ID 0x2e
#define PCI_CAPABILITY_LIST 0x34
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_INTERRUPT_PIN 0x3d

#define PCI_COMMAND_MEMORY 0x0002
#define PCI_COMMAND_MASTER 0x0004
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS_INTERRUPT 0x0008
#define PCI_STATUS_CAP_LIST 0x0010
#define PCI_CAP_ID_MSIX 0x11
#define PCI_CAP_ID_VNDR 0x09

#define MSIX_MAX 64
#define MSIX_ENABLE 0x8000
#define MSIX_FUNC_MASK 0x4000
#define MSIX_NO_VECTOR 0xffff

struct vm;
struct pci_dev;

struct pci_msix {
	pthread_mutex_t lock;
	unsigned nr, cap;
	uint32_t table[MSIX_MAX][4]; /* address low, address high, data, vector control */
	uint64_t pending;
	struct vm_msi msi[MSIX_MAX];
};

struct pci_dev {
	struct vm *vm;
	unsigned slot;
	uint8_t cfg[256], wmask[256];
	struct {
		uint32_t size;	/* a power of 2, at least 4 KiB; 0: no BAR */
		uint32_t mapped; /* where the guest sees it now; 0: not decoded */
		bus_fn fn;
		void *opaque;
	} bar[6];
	unsigned gsi;
	int intx;
	struct pci_msix *msix;
	unsigned cap_last, cap_free; /* capability list, built by pci_cap_add() */
	void *opaque;
	/* Optional: after a configuration write (capabilities), and after a BAR moved. */
	void (*cfg_written)(struct pci_dev *d, unsigned off, unsigned size);
	void (*bar_moved)(struct pci_dev *d, unsigned bar, uint32_t old, uint32_t now);
};

int pci_init(struct vm *vm);
void pci_destroy(struct vm *vm);
/* A new function 0 in the next free slot, its BARs placed by ring3 as firmware would. */
struct pci_dev *pci_dev_new(struct vm *vm, uint16_t vendor, uint16_t device, uint32_t class_code,
			    uint8_t revision, uint16_t subsys_vendor, uint16_t subsys);
int pci_bar_set(struct pci_dev *d, unsigned bar, uint32_t size, bus_fn fn, void *opaque);
/* Append a capability; body is everything after the ID and next bytes. Its offset, or 0. */
unsigned pci_cap_add(struct pci_dev *d, uint8_t id, const void *body, unsigned len);
void pci_intx(struct pci_dev *d, int level);

int pci_msix_init(struct pci_dev *d, unsigned nr, unsigned bar, uint32_t table_off,
		  uint32_t pba_off);
void pci_msix_table_io(struct pci_dev *d, uint64_t off, uint8_t *data, unsigned size,
		       bool is_write);
void pci_msix_pba_io(struct pci_dev *d, uint64_t off, uint8_t *data, unsigned size, bool is_write);
bool pci_msix_enabled(struct pci_dev *d);
/* Raise vector (or remember it while masked). */
void pci_msix_notify(struct pci_dev *d, unsigned vector);

/* AML for the DSDT: the PCI root with its windows. Bytes written, 0 if room is short. */
size_t pci_dsdt_aml(uint8_t *out, size_t room);

/* Configuration mechanism #1, for tests: the 32-bit address then the data port. */
uint32_t pci_conf_read(struct vm *vm, unsigned slot, unsigned off, unsigned size);
void pci_conf_write(struct vm *vm, unsigned slot, unsigned off, unsigned size, uint32_t v);

#endif
