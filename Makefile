# ring3 — a hosted hypervisor. `make` builds ./ring3 and the guests,
# `make check` runs every test, `make run` sets up and boots the default guest.
# V=1 shows commands; MODE=asan builds with sanitizers.

BUILD := build
CC := gcc
PKGS := libseccomp
CFLAGS := -std=gnu17 -O2 -g -Wall -Wextra -Werror -Wmissing-prototypes -Wstrict-prototypes \
	  -Wshadow -Wno-unused-parameter -fno-strict-aliasing -D_GNU_SOURCE -MMD -MP
LDLIBS := -lpthread -lZydis $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lseccomp)
# libslirp (virtio-net --net user); not through pkg-config, whose slirp.pc wants glib's headers
LDLIBS += -lslirp
LDFLAGS :=
ifeq ($(MODE),asan)
CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
endif
ifneq ($(V),1)
Q := @
endif

SRCS := $(wildcard src/*.c src/core/*.c src/cpu/*.c src/cpu/kvm/*.c src/cpu/bt/*.c src/dev/*.c \
	src/dev/virtio/*.c src/boot/*.c src/pv/*.c)
ASMS := $(wildcard src/cpu/bt/*.S)
OBJS := $(SRCS:%.c=$(BUILD)/%.o) $(ASMS:%.S=$(BUILD)/%.o)
LIB_OBJS := $(filter-out $(BUILD)/src/main.o,$(OBJS))

# `make` alone builds everything: the included files below define rules of
# their own, and the first rule would otherwise be the default.
.DEFAULT_GOAL := all
GUEST_TARGETS :=
-include guest/guest.mk
-include guest/hostile/hostile.mk
-include guest/linux/linux.mk
-include guest/tools/tools.mk
-include tests/unit/unit.mk

.PHONY: all check check-nested run setup guest-linux bench clean
all: ring3 $(GUEST_TARGETS)

ring3: $(OBJS)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/%.o: %.S
	@mkdir -p $(dir $@)
	@echo "  AS      $<"
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

# Set-up first (it installs the compilers and libraries the build needs),
# then a fresh make so that what it installed is seen.
setup:
	$(Q)scripts/setup.sh

GUEST_LINUX := $(BUILD)/guest-linux
$(GUEST_LINUX)/initrd-%.img: guest/linux/init scripts/mkinitramfs.sh $(BUILD)/guest/ring3-exit-%
	$(Q)scripts/mkinitramfs.sh $* $(GUEST_LINUX)

guest-linux: $(GUEST_LINUX)/initrd-amd64.img $(GUEST_LINUX)/initrd-i386.img

check: setup
	$(Q)$(MAKE) --no-print-directory all guest-linux $(UNIT_TESTS)
	$(Q)tests/run.sh

check-nested: setup
	$(Q)$(MAKE) --no-print-directory all guest-linux
	$(Q)tests/run.sh tests/nested

run: setup
	$(Q)$(MAKE) --no-print-directory all guest-linux
	./ring3 run

bench: setup
	$(Q)$(MAKE) --no-print-directory all guest-linux
	$(Q)bench/engines.sh

clean:
	rm -rf $(BUILD) ring3

-include $(OBJS:.o=.d)
