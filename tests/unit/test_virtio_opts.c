/*
 * The paravirtual devices' options: --disk (repeatable, ro, cache=), --net
 * (user with hostfwd and mac, tap) and --console virtio, good and bad.
 */
#include <string.h>

#include "core/options.h"
#include "tap.h"

static int parse(struct vm_config *cfg, char *err, const char *a0, const char *a1, const char *a2,
		 const char *a3)
{
	char *argv[5] = { (char *)a0, (char *)a1, (char *)a2, (char *)a3, NULL };
	int argc = 0;

	while (argc < 4 && argv[argc])
		argc++;
	err[0] = 0;
	return options_parse_run(argc, argv, cfg, err, 256);
}

int main(void)
{
	struct vm_config c;
	char err[256];

	ok(parse(&c, err, "--disk", "a.img", "--disk=b.img,ro,cache=none", NULL) == 0 &&
		   c.nr_disks == 2 && !strcmp(c.disk[0].path, "a.img") && !c.disk[0].ro &&
		   !c.disk[0].direct && !strcmp(c.disk[1].path, "b.img") && c.disk[1].ro &&
		   c.disk[1].direct,
	   "two disks, the second ro with cache=none");
	ok(parse(&c, err, "--disk", "a.img,cache=writeback", NULL, NULL) == 0 && !c.disk[0].direct,
	   "cache=writeback");
	ok(parse(&c, err, "--disk", "a.img,rw", NULL, NULL) < 0 && strstr(err, "--disk"),
	   "an unknown disk option: %s", err);
	ok(parse(&c, err, "--disk", ",ro", NULL, NULL) < 0, "no path");
	ok(parse(&c, err, "--disk", "", NULL, NULL) < 0, "an empty path");
	ok(parse(&c, err, "--disk", "a,cache=", NULL, NULL) < 0, "cache= with no value");

	ok(parse(&c, err, "--net", "user", NULL, NULL) == 0 && c.net.kind == NET_USER &&
		   !c.net.has_mac && c.net.nr_hostfwd == 0,
	   "--net user");
	ok(parse(&c, err, "--net", "user,hostfwd=tcp:8080-:80,hostfwd=tcp::2222-:22,mac=52:54:00:12:34:56",
		 NULL, NULL) == 0 &&
		   c.net.nr_hostfwd == 2 && c.net.hostfwd[0].host == 8080 &&
		   c.net.hostfwd[0].guest == 80 && c.net.hostfwd[1].host == 2222 &&
		   c.net.hostfwd[1].guest == 22 && c.net.has_mac && c.net.mac[5] == 0x56,
	   "two hostfwds (both spellings) and a mac");
	ok(parse(&c, err, "--net", "tap:tap0,mac=52:54:00:00:00:01", NULL, NULL) == 0 &&
		   c.net.kind == NET_TAP && !strcmp(c.net.tap, "tap0") && c.net.mac[5] == 1,
	   "--net tap:tap0 with a mac");
	ok(parse(&c, err, "--net", "user,hostfwd=udp:53-:53", NULL, NULL) < 0, "udp forwarding is refused");
	ok(parse(&c, err, "--net", "user,hostfwd=tcp:0-:80", NULL, NULL) < 0, "port 0");
	ok(parse(&c, err, "--net", "user,hostfwd=tcp:70000-:80", NULL, NULL) < 0, "port 70000");
	ok(parse(&c, err, "--net", "user,hostfwd=tcp:80:80", NULL, NULL) < 0, "no dash");
	ok(parse(&c, err, "--net", "user,mac=01:00:00:00:00:01", NULL, NULL) < 0, "a multicast mac");
	ok(parse(&c, err, "--net", "user,mac=52:54:00:12:34", NULL, NULL) < 0, "a short mac");
	ok(parse(&c, err, "--net", "tap:", NULL, NULL) < 0, "tap without a name");
	ok(parse(&c, err, "--net", "tap:averyveryverylongname", NULL, NULL) < 0, "a tap name too long");
	ok(parse(&c, err, "--net", "tap:t0,hostfwd=tcp:1-:1", NULL, NULL) < 0, "hostfwd on tap");
	ok(parse(&c, err, "--net", "bridge", NULL, NULL) < 0 && strstr(err, "user"),
	   "an unknown backend: %s", err);

	ok(parse(&c, err, "--console", "virtio", NULL, NULL) == 0 && c.console_virtio &&
		   c.console == CONSOLE_STDIO,
	   "--console virtio");
	ok(parse(&c, err, "--console", "virtio", "--console", "none") == 0 && !c.console_virtio,
	   "a later --console replaces it");
	return done_testing();
}
