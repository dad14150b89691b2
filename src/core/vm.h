/*
 * The virtual machine: its configuration, RAM, buses, devices, vCPUs and the
 * engine that runs them.
 */
#ifndef RING3_CORE_VM_H
#define RING3_CORE_VM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../cpu/engine.h"
#include "bus.h"
#include "evloop.h"
#include "mem.h"
#include "../pv/abi.h"

#define VM_MAX_CPUS 32
#define VM_MAX_CMDLINE 4096

enum engine_choice { ENGINE_AUTO, ENGINE_KVM, ENGINE_BT };
enum console_kind { CONSOLE_STDIO, CONSOLE_NONE, CONSOLE_FILE };
/* --bt-user: how the bt engine runs guest ring 3 (docs/bt.md, "Guest ring 3") */
enum bt_user_mode { BT_USER_AUTO, BT_USER_DIRECT, BT_USER_TRANSLATE };

/* What the kernel image is, as the loader found it (boot/loader.c). */
enum kernel_kind { KERNEL_UNKNOWN, KERNEL_BZIMAGE64, KERNEL_BZIMAGE32, KERNEL_MULTIBOOT };

/* Paravirtual devices (docs/devices.md), from --disk, --net and --console virtio. */
#define VM_MAX_DISKS 8
#define VM_MAX_HOSTFWD 8
struct vm_disk {
	const char *path;
	bool ro;
	bool direct; /* cache=none: O_DIRECT */
};
enum net_kind { NET_NONE, NET_USER, NET_TAP };
struct vm_net {
	enum net_kind kind;
	char tap[16];
	uint8_t mac[6];
	bool has_mac;
	int nr_hostfwd;
	struct { uint16_t host, guest; } hostfwd[VM_MAX_HOSTFWD];
};

struct vm_config {
	const char *kernel;
	const char *initrd;
	const char *append;
	uint64_t mem_size;
	int cpus;
	enum engine_choice engine;
	enum console_kind console;
	const char *console_path;
	bool stats;
	bool default_guest;	/* no --kernel: the default guest from build/guest-linux */
	char **command;		/* -- COMMAND ARGS…, NULL-terminated, or NULL */
	enum kernel_kind kernel_kind; /* filled by loader_probe() before the engine is chosen */
	int nr_disks;
	struct vm_disk disk[VM_MAX_DISKS];
	struct vm_net net;
	bool console_virtio; /* --console virtio: hvc0 beside ttyS0 */
	enum bt_user_mode bt_user;
};

struct vcpu_stats {
	uint64_t count[VCPU_EXIT__COUNT];
	uint64_t ns[VCPU_EXIT__COUNT]; /* time the monitor spent handling each kind */
	uint64_t run_ns;	       /* time inside the engine's vcpu_run */
	uint64_t hcall[PV_NR_CALLS + 1]; /* hypercalls served by the monitor, by number */
	/* ... and by the engine itself (the bt child's counters), or NULL */
	const volatile uint64_t *hcall_engine;
};

struct vcpu {
	struct vm *vm;
	int id;
	pthread_t thread;
	void *engine_data;
	struct cpu_boot_state boot;
	struct vcpu_stats stats;
	uint32_t pv_user_limit; /* the pv ABI's USER_LIMIT where the monitor serves MMU_UPDATE */
};

struct serial8250;
struct pic;
struct pit;
struct pci;
struct virtio_dev;
struct pv_timer;

struct vm {
	const struct vm_config *cfg;
	const struct cpu_engine *engine;
	void *engine_data;
	struct guest_mem mem;
	struct bus pio, mmio;
	struct evloop loop;
	int nr_vcpus;
	struct vcpu *vcpu[VM_MAX_CPUS];

	/* Devices other parts need to reach. pic and pit exist only when the
	 * engine has no in-kernel irqchip. */
	struct serial8250 *uart;
	struct pic *pic;
	struct pci *pci;
	int nr_virtio;
	struct virtio_dev *virtio[16]; /* for --stats */
	struct pit *pit;
	struct pv_timer *pv_timer; /* the pv ABI's one-shot timer (src/pv/vmcalls.c) */

	uint64_t irq_count[24];

	atomic_bool stopping;
	int exit_status;
	char exit_reason[160];
	uint64_t start_ns;
};

int vm_create(struct vm *vm, const struct vm_config *cfg, const struct cpu_engine *engine);
/* Runs the VM to its end; returns the exit status ring3 should exit with. */
int vm_run(struct vm *vm);
void vm_destroy(struct vm *vm);

/* Ask the VM to end with status; the first request wins. Safe from any thread. */
void vm_request_exit(struct vm *vm, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Device interrupt lines, routed to the engine (core/irq.c). */
void irq_set(struct vm *vm, unsigned gsi, int level);
void irq_pulse(struct vm *vm, unsigned gsi);

#endif
