/*
 * Which boot protocol a kernel speaks, decided from its first 8 KiB, and the
 * dispatch to that protocol's loader.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/vm.h"
#include "loader.h"

#define KERNEL_MAX (256u << 20)

void *loader_read_file(const char *path, size_t max, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	size_t done = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;
		return NULL;
	}
	if ((uint64_t)st.st_size > max) {
		close(fd);
		errno = EFBIG;
		return NULL;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(buf);
			close(fd);
			errno = n == 0 ? EIO : errno;
			return NULL;
		}
		done += (size_t)n;
	}
	close(fd);
	*len = done;
	return buf;
}

int loader_probe(struct vm_config *cfg, char *why, size_t len)
{
	char mb_why[160] = "", bz_why[160] = "";
	size_t n;
	uint8_t *img = loader_read_file(cfg->kernel, KERNEL_MAX, &n);
	int r;

	if (!img) {
		snprintf(why, len, "cannot read kernel %s: %s", cfg->kernel,
			 errno == EFBIG ? "larger than 256 MiB" : strerror(errno));
		return -EINVAL;
	}
	r = bzimage_probe(img, n, bz_why, sizeof(bz_why));
	if (r == 64 || r == 32) {
		cfg->kernel_kind = r == 64 ? KERNEL_BZIMAGE64 : KERNEL_BZIMAGE32;
		free(img);
		return 0;
	}
	if (multiboot_probe(img, n, mb_why, sizeof(mb_why)) == 0) {
		cfg->kernel_kind = KERNEL_MULTIBOOT;
		free(img);
		return 0;
	}
	free(img);
	snprintf(why, len, "%s is not a bootable kernel: %s", cfg->kernel,
		 bz_why[0] && strstr(bz_why, "no ") != bz_why ? bz_why : mb_why);
	return -EINVAL;
}

int loader_load(struct vm *vm, struct cpu_boot_state *boot)
{
	size_t n;
	uint8_t *img = loader_read_file(vm->cfg->kernel, KERNEL_MAX, &n);
	int err;

	if (!img) {
		log_msg("cannot read kernel %s: %s", vm->cfg->kernel, strerror(errno));
		return -errno;
	}
	memset(boot, 0, sizeof(*boot));
	if (vm->cfg->kernel_kind == KERNEL_MULTIBOOT)
		err = multiboot_load(vm, img, n, boot);
	else
		err = bzimage_load(vm, img, n, boot);
	free(img);
	return err;
}
