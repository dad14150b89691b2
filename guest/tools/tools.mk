# Guest-side tools for the default initramfs and the nested tests, built
# static for amd64 and i386 against glibc (libc6-dev-i386 for -m32).
GT_CFLAGS := -O2 -static -std=gnu17 -Wall -Wextra -Werror -Wshadow

$(BUILD)/guest/virtio-hostile-amd64: guest/tools/virtio-hostile.c
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) -m64 $(GT_CFLAGS) -o $@ $<

$(BUILD)/guest/virtio-hostile-i386: guest/tools/virtio-hostile.c
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) -m32 $(GT_CFLAGS) -o $@ $<

GUEST_TARGETS += $(BUILD)/guest/virtio-hostile-amd64 $(BUILD)/guest/virtio-hostile-i386

# The in-guest workloads of bench/blk.sh and bench/net.sh (amd64: the nested bed's guest).
$(BUILD)/guest/%-amd64: guest/tools/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) -m64 $(GT_CFLAGS) -pthread -o $@ $<

GUEST_TARGETS += $(BUILD)/guest/blkbench-amd64 $(BUILD)/guest/netbench-amd64
