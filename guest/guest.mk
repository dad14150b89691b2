# guest/guest.mk: the guest test kernel and bench-native, included by the
# top-level Makefile (which sets BUILD and depends on $(GUEST_TARGETS)).
# Everything here is prefixed TK_ so it cannot clash with the monitor's build.

TK_SRC := guest/testkernel
TK_BENCH := guest/bench
TK_OUT := $(BUILD)/guest
TK_CC := gcc

# The CPU loops are compiled with exactly these flags for the guest and for
# the native program, so guest/native timings compare like with like.
# (No loop-to-memset rewriting: neither build should call a library there.)
# i686 (so CMOV) is gcc -m32's default, spelled out. gnu17 is C17 plus the
# GNU extensions a kernel needs (asm, attributes).
TK_CPU_CFLAGS := -m32 -march=i686 -O2 -fno-pic -fno-tree-loop-distribute-patterns
TK_WARN := -std=gnu17 -Wall -Wextra -Werror -Wmissing-prototypes -Wstrict-prototypes -Wshadow
TK_CFLAGS := $(TK_CPU_CFLAGS) $(TK_WARN) -ffreestanding -nostdlib -fno-stack-protector \
	-mgeneral-regs-only -fcf-protection=none -fno-asynchronous-unwind-tables -MMD -MP
TK_LDFLAGS := -m32 -nostdlib -static -no-pie -Wl,-T,$(TK_SRC)/kernel.ld -Wl,--build-id=none \
	-Wl,--no-warn-rwx-segments -Wl,-z,noexecstack
TK_LIBGCC := $(shell $(TK_CC) -m32 -print-libgcc-file-name)

TK_KERNEL_SRCS := boot.S isr.S smc.S main.c serial.c print.c gdt.c idt.c trap.c pic.c pit.c \
	paging.c task.c syscall.c user.c tap.c checks_cpu.c checks_trap.c checks_dev.c \
	checks_mem.c checks_smc.c checks_user.c bench.c
TK_KERNEL_OBJS := $(addprefix $(TK_OUT)/testkernel/,$(addsuffix .o,$(basename $(TK_KERNEL_SRCS)))) \
	$(TK_OUT)/testkernel/cpuloops.o $(TK_OUT)/testkernel/benchfmt.o
TK_NATIVE_OBJS := $(TK_OUT)/native/native.o $(TK_OUT)/native/cpuloops.o $(TK_OUT)/native/benchfmt.o

# These stems are shorter than the top-level $(BUILD)/%.o rule's, so make picks these.
$(TK_OUT)/testkernel/%.o: $(TK_SRC)/%.c
	@mkdir -p $(@D)
	@echo "  CC32    $<"
	$(Q)$(TK_CC) $(TK_CFLAGS) -c -o $@ $<

$(TK_OUT)/testkernel/%.o: $(TK_SRC)/%.S
	@mkdir -p $(@D)
	@echo "  AS32    $<"
	$(Q)$(TK_CC) $(TK_CFLAGS) -c -o $@ $<

$(TK_OUT)/testkernel/%.o: $(TK_BENCH)/%.c
	@mkdir -p $(@D)
	@echo "  CC32    $<"
	$(Q)$(TK_CC) $(TK_CFLAGS) -c -o $@ $<

$(TK_OUT)/testkernel.elf: $(TK_KERNEL_OBJS) $(TK_SRC)/kernel.ld
	@echo "  LD32    $@"
	$(Q)$(TK_CC) $(TK_LDFLAGS) -o $@ $(TK_KERNEL_OBJS) $(TK_LIBGCC)

# The paravirtual build: the same sources with -DTK_PV, plus pv.c (docs/pv.md).
TK_PV_OBJS := $(addprefix $(TK_OUT)/testkernel-pv/,$(addsuffix .o,$(basename $(TK_KERNEL_SRCS) pv.c))) \
	$(TK_OUT)/testkernel-pv/cpuloops.o $(TK_OUT)/testkernel-pv/benchfmt.o

$(TK_OUT)/testkernel-pv/%.o: $(TK_SRC)/%.c
	@mkdir -p $(@D)
	@echo "  CC32    $< (pv)"
	$(Q)$(TK_CC) $(TK_CFLAGS) -DTK_PV -c -o $@ $<

$(TK_OUT)/testkernel-pv/%.o: $(TK_SRC)/%.S
	@mkdir -p $(@D)
	@echo "  AS32    $< (pv)"
	$(Q)$(TK_CC) $(TK_CFLAGS) -DTK_PV -c -o $@ $<

$(TK_OUT)/testkernel-pv/%.o: $(TK_BENCH)/%.c
	@mkdir -p $(@D)
	@echo "  CC32    $< (pv)"
	$(Q)$(TK_CC) $(TK_CFLAGS) -DTK_PV -c -o $@ $<

$(TK_OUT)/testkernel-pv.elf: $(TK_PV_OBJS) $(TK_SRC)/kernel.ld
	@echo "  LD32    $@"
	$(Q)$(TK_CC) $(TK_LDFLAGS) -Wl,--defsym=TK_KERNEL_BASE=0x00c00000 -o $@ $(TK_PV_OBJS) $(TK_LIBGCC)

$(TK_OUT)/native/%.o: $(TK_BENCH)/%.c
	@mkdir -p $(@D)
	@echo "  CC32    $<"
	$(Q)$(TK_CC) $(TK_CPU_CFLAGS) $(TK_WARN) -MMD -MP -c -o $@ $<

$(TK_OUT)/bench-native: $(TK_NATIVE_OBJS)
	@echo "  LD32    $@"
	$(Q)$(TK_CC) -m32 -static -no-pie -o $@ $(TK_NATIVE_OBJS)

GUEST_TARGETS += $(TK_OUT)/testkernel.elf $(TK_OUT)/testkernel-pv.elf $(TK_OUT)/bench-native

-include $(TK_KERNEL_OBJS:.o=.d) $(TK_PV_OBJS:.o=.d) $(TK_NATIVE_OBJS:.o=.d)
