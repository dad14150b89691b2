# The default guest's own tools, for the amd64 and i386 initramfs.
LX_CFLAGS := -Os -static -nostdlib -ffreestanding -fno-pic -fno-stack-protector -Wall -Wextra -Werror

$(BUILD)/guest/ring3-exit-amd64: guest/linux/ring3-exit.c
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) -m64 $(LX_CFLAGS) -o $@ $<

$(BUILD)/guest/ring3-exit-i386: guest/linux/ring3-exit.c
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) -m32 $(LX_CFLAGS) -o $@ $<

GUEST_TARGETS += $(BUILD)/guest/ring3-exit-amd64 $(BUILD)/guest/ring3-exit-i386
