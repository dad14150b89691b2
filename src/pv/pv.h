/*
 * The ring3 hypercall ABI (docs/pv.md): one table serves every engine.
 */
#ifndef RING3_PV_PV_H
#define RING3_PV_PV_H

#include <stdint.h>

struct vcpu;

int64_t pv_hypercall(struct vcpu *vcpu, uint64_t nr, const uint64_t arg[5]);

#endif
