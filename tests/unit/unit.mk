# Unit tests: every tests/unit/test_X.c becomes $(BUILD)/tests/test_X, linked
# against all of ring3's objects but main.o. tests/run.sh runs them.
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_TESTS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@echo "  TEST    $@"
	$(Q)$(CC) $(CFLAGS) -Wno-missing-prototypes -Isrc -o $@ $< $(LIB_OBJS) $(LDFLAGS) $(LDLIBS)
