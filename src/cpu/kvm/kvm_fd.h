/*
 * The kvm engine's fast paths for paravirtual devices (kvm_fd.c): ioeventfd,
 * MSI routes with irqfd, and KVM_SIGNAL_MSI. The hooks of struct cpu_engine.
 */
#ifndef RING3_CPU_KVM_KVM_FD_H
#define RING3_CPU_KVM_KVM_FD_H

#include <stdbool.h>
#include <stdint.h>

struct vm;

int kvm_ioeventfd(struct vm *vm, bool pio, uint64_t addr, unsigned len, int fd, bool assign);
int kvm_msi_route(struct vm *vm, int gsi, uint64_t addr, uint32_t data);
int kvm_irqfd(struct vm *vm, unsigned gsi, int fd, bool assign);
int kvm_msi(struct vm *vm, uint64_t addr, uint32_t data);

#endif
