/*
 * The ring3 hypercall ABI on the host side (docs/pv.md; numbers in abi.h).
 * One dispatcher serves every engine: an engine hands it the call number and
 * the five argument registers, and puts the result in EAX. Where the
 * dispatcher runs decides what it can serve: in the monitor everything, in
 * the bt engine's sandbox child only what needs no device (the rest comes
 * back as PV_FORWARD and travels to the monitor as a hypercall exit).
 */
#ifndef RING3_PV_PV_H
#define RING3_PV_PV_H

#include <stdint.h>
#include <stdio.h>

#include "abi.h"

struct vm;
struct vcpu;

/* Counters by call number; the last slot counts numbers that are no call. */
#define PV_STATS_SLOTS (PV_NR_CALLS + 1)

/* pv_dispatch's answer for a call that must be served in the monitor. */
#define PV_FORWARD INT64_MIN

/* Where the dispatcher runs. */
struct pv_env {
	uint8_t *ram;	   /* guest RAM from guest-physical 0 (the 32-bit guest's low RAM) */
	uint64_t ram_size;
	uint32_t cr3; /* the guest's page directory: MMU_UPDATE's entries there are PDEs */
	uint32_t user_limit; /* USER_LIMIT's X (PDEs from there up are not user), 0: none */
	/*
	 * The engine's CPU state: SHARED_PAGE, HALT, SET_IDT, SET_GDT, STACK_SWITCH,
	 * SET_CR3, TLB_FLUSH, IRQ_ENABLE, IRQ_DISABLE, USER_LIMIT, after the dispatcher checked
	 * their arguments. The result for EAX. NULL: -PV_ENOSYS.
	 */
	int64_t (*cpu)(void *opaque, uint32_t nr, const uint32_t arg[5]);
	/* Optional: MMU_UPDATE wrote the word at gpa (code pages, shadow tables). */
	void (*written)(void *opaque, uint64_t gpa);
	void *opaque;
	struct vcpu *vcpu; /* the monitor's vCPU for console, timer, shutdown; NULL: forward */
	uint64_t *counts;  /* PV_STATS_SLOTS counters, or NULL */
};

/* Serve one call: its result (>= 0, or -PV_E*), or PV_FORWARD. */
int64_t pv_dispatch(const struct pv_env *env, uint32_t nr, const uint32_t arg[5]);

/* The run loop's entry for VCPU_EXIT_HYPERCALL: the monitor's pv_env for this vCPU. */
int64_t pv_hypercall(struct vcpu *vcpu, uint64_t nr, const uint64_t arg[5], uint64_t cr3);

/* mmu.c: check every request of a batch, then apply them all (or none). */
int64_t pv_mmu_update(const struct pv_env *env, uint32_t gpa, uint32_t count);
/* UPDATE_VA: the PTE that maps la in CR3's directory, checked as MMU_UPDATE checks it, written. */
int64_t pv_update_va(const struct pv_env *env, uint32_t la, uint32_t val, uint32_t flags);
/* Is a present page-table entry (kind PV_MMU_PTE/PDE, at offset ofs in its table) allowed? */
int pv_mmu_check(uint64_t ram_size, unsigned kind, uint32_t ofs, uint32_t val);

/* vmcalls.c: the calls that need the VM (console, shutdown, timer, yield). */
int64_t pv_vm_call(struct vcpu *vcpu, const struct pv_env *env, uint32_t nr,
		   const uint32_t arg[5]);
int pv_init(struct vm *vm); /* SET_TIMER's timerfd on the I/O thread */
void pv_destroy(struct vm *vm);

/* --stats: the table of calls by number (monitor and engine counts added). */
void pv_print_stats(struct vm *vm, FILE *f);

#endif
