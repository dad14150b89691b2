/*
 * The one interface between the run loop and a CPU engine.
 *
 * An engine runs guest code until the guest does something the engine does
 * not handle itself, and describes it as a struct vcpu_exit. The run loop
 * (core/vm.c) hands every exit to the same bus, devices and hypercall table,
 * and never asks which engine it drives.
 */
#ifndef RING3_CPU_ENGINE_H
#define RING3_CPU_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct vm;
struct vcpu;
struct vm_config;

enum vcpu_exit_reason {
	VCPU_EXIT_NONE,		/* kicked, or an engine-internal event: just run again */
	VCPU_EXIT_IO,		/* port I/O (IN/OUT/INS/OUTS) */
	VCPU_EXIT_MMIO,		/* an access to guest-physical memory that is not RAM */
	VCPU_EXIT_HLT,		/* counted only: engines wait for interrupts themselves */
	VCPU_EXIT_HYPERCALL,	/* the pv ABI (docs/pv.md) */
	VCPU_EXIT_SHUTDOWN,	/* triple fault or reset request: the VM ends */
	VCPU_EXIT_FAULT,	/* the engine cannot go on: fault.msg says why */
	VCPU_EXIT__COUNT,
};

/*
 * What the guest did. For IO, data points into a buffer the engine owns
 * (count * size bytes, count > 1 for string I/O); for a read the run loop fills
 * it and the engine completes the instruction on the next vcpu_run. An MMIO
 * read works the same way through mmio.data: the run loop passes the same
 * struct, uncleared, to the next vcpu_run.
 */
struct vcpu_exit {
	enum vcpu_exit_reason reason;
	union {
		struct {
			uint16_t port;
			uint8_t size;	/* 1, 2 or 4 */
			bool is_write;
			uint32_t count;
			uint8_t *data;
		} io;
		struct {
			uint64_t gpa;
			uint8_t size;	/* 1, 2, 4 or 8 */
			bool is_write;
			uint8_t data[8];
		} mmio;
		struct {
			uint64_t nr;
			uint64_t arg[5];
			uint64_t cr3;	/* the guest's CR3 at the call (MMU_UPDATE's PDEs) */
			int64_t ret;	/* set by the run loop */
		} hcall;
		struct {
			char msg[160];
		} fault;
	};
};

/* The CPU state a loader asks for at the first instruction. */
enum cpu_mode {
	CPU_MODE_PROT32,	/* 32-bit protected mode, paging off (multiboot, i386 bzImage) */
	CPU_MODE_LONG64,	/* 64-bit long mode, identity page tables built by the loader */
};

struct cpu_seg {
	uint16_t sel;
	uint32_t base, limit;	/* limit in bytes - 1, already scaled by G */
	uint8_t type;		/* descriptor type field: 0xb code, 0x3 data, … */
	bool s, present, db, l, g;
	uint8_t dpl;
};

struct cpu_boot_state {
	enum cpu_mode mode;
	uint64_t rip, rsp, rax, rbx, rsi, rdi, rbp;
	uint64_t cr0, cr3, cr4, efer;
	uint64_t gdt_base;
	uint16_t gdt_limit;
	struct cpu_seg cs, ds;	/* ds is loaded into DS, ES, FS, GS and SS */
};

/* Engine capabilities the VM builder (not the run loop) consults. */
#define ENGINE_IRQCHIP_IN_KERNEL (1u << 0) /* PIC, IOAPIC, LAPIC and PIT live in the engine */

struct cpu_engine {
	const char *name;
	unsigned flags;
	/* Can this host run this guest? 0, or -errno with a one-line reason in why. */
	int (*check)(const struct vm_config *cfg, char *why, size_t len);
	int (*init)(struct vm *vm);
	int (*vcpu_init)(struct vcpu *vcpu, const struct cpu_boot_state *boot);
	/* Run until an exit; 0 with *exit filled, or -errno. */
	int (*vcpu_run)(struct vcpu *vcpu, struct vcpu_exit *exit);
	/* From any thread: make vcpu_run return soon (interrupt pending, VM stopping). */
	void (*vcpu_kick)(struct vcpu *vcpu);
	/* Route a device's interrupt line (a GSI) to the guest. */
	void (*irq_line)(struct vm *vm, unsigned gsi, int level);
	void (*print_stats)(struct vm *vm, FILE *f);
	void (*destroy)(struct vm *vm);

	/*
	 * Optional fast paths for paravirtual devices; NULL where the engine has
	 * none, and core/notify.c falls back to the bus and to irq_set(). Callable
	 * from any thread. 0 or -errno.
	 */
	/* Signal fd on a guest write of len bytes to addr, instead of an exit. */
	int (*ioeventfd)(struct vm *vm, bool pio, uint64_t addr, unsigned len, int fd,
			 bool assign);
	/* Point a route at the MSI (addr, data): gsi < 0 makes a new one. The gsi, or -errno. */
	int (*msi_route)(struct vm *vm, int gsi, uint64_t addr, uint32_t data);
	/* Inject route gsi whenever fd is written (irqfd). */
	int (*irqfd)(struct vm *vm, unsigned gsi, int fd, bool assign);
	/* Deliver one MSI now. */
	int (*msi)(struct vm *vm, uint64_t addr, uint32_t data);

	/*
	 * The pv ABI's CPU-state calls (src/pv/pv.h, pv_env.cpu) when they reach the
	 * monitor as VCPU_EXIT_HYPERCALL; NULL where the engine serves them itself.
	 */
	int64_t (*pv_cpu)(void *vcpu, uint32_t nr, const uint32_t arg[5]);
};

extern const struct cpu_engine kvm_engine;
extern const struct cpu_engine bt_engine;

const char *vcpu_exit_name(enum vcpu_exit_reason reason);

#endif
