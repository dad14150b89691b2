# guest/hostile/hostile.mk: the bt engine's hostile guest, build/guest/hostile.elf,
# a multiboot kernel (tests/guest/bt-hostile.sh runs its modes). Included by the
# top-level Makefile; everything here is prefixed HG_.

HG_SRC := guest/hostile
HG_OUT := $(BUILD)/guest/hostile
HG_CFLAGS := -m32 -march=i686 -O2 -std=gnu17 -Wall -Wextra -Werror -ffreestanding -nostdlib \
	-fno-pic -fno-stack-protector -mgeneral-regs-only -fcf-protection=none \
	-fno-asynchronous-unwind-tables -MMD -MP
HG_LDFLAGS := -m32 -nostdlib -static -no-pie -Wl,-T,$(HG_SRC)/hostile.ld -Wl,--build-id=none \
	-Wl,--no-warn-rwx-segments -Wl,-z,noexecstack
HG_OBJS := $(HG_OUT)/boot.o $(HG_OUT)/hostile.o

$(HG_OUT)/%.o: $(HG_SRC)/%.c
	@mkdir -p $(@D)
	@echo "  CC      $<"
	$(Q)gcc $(HG_CFLAGS) -c -o $@ $<

$(HG_OUT)/%.o: $(HG_SRC)/%.S
	@mkdir -p $(@D)
	@echo "  AS      $<"
	$(Q)gcc $(HG_CFLAGS) -c -o $@ $<

$(BUILD)/guest/hostile.elf: $(HG_OBJS) $(HG_SRC)/hostile.ld
	@echo "  LD      $@"
	$(Q)gcc $(HG_LDFLAGS) -o $@ $(HG_OBJS)

GUEST_TARGETS += $(BUILD)/guest/hostile.elf

-include $(HG_OBJS:.o=.d)
