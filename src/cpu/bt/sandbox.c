/*
 * The sandbox child: a fork of the monitor that keeps only guest RAM, the
 * shared page and the runtime, installs its signal handlers and a seccomp
 * filter, and then runs nothing but guest code and those handlers. Whatever
 * the guest executes — even a far jump into 64-bit mode — it can make no host
 * system call but the runtime's own few. Linux Documentation/userspace-api/
 * seccomp_filter.rst; docs/bt.md (threat model).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../core/vm.h"
#include "runtime.h"
#include "sandbox.h"

extern char rt_entry[], rt_restorer[], rt_restorer_ip[], rt_syscall_ip[];
extern uint64_t rt_host_fsbase;

#define ALTSTACK_SIZE (256u << 10)
static uint8_t altstack[ALTSTACK_SIZE] __attribute__((aligned(4096)));

/* The kernel's struct sigaction (glibc's wrapper would install its own restorer). */
struct ksigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};
#define SA_RESTORER_FLAG 0x04000000

static struct robust_list_head robust_head;
static struct robust_list robust_entry;

/* Report a set-up failure to the monitor and end; only before seccomp. */
static _Noreturn void child_fail(struct bt_shared *sh, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static _Noreturn void child_fail(struct bt_shared *sh, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sh->msg, BT_MSG_SIZE, fmt, ap);
	va_end(ap);
	sh->exit.kind = BT_EXIT_FAULT;
	__atomic_store_n(&sh->turn, BT_TURN_PARENT, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, &sh->turn, FUTEX_WAKE, 1, NULL, NULL, 0);
	__atomic_store_n(&sh->u_ready, 2, __ATOMIC_SEQ_CST); /* U's set-up failed, if this is U */
	syscall(SYS_futex, &sh->u_ready, FUTEX_WAKE, 1, NULL, NULL, 0);
	_exit(1);
}

/* Nothing of the monitor may sit below 4 GiB: that is the guest's. */
static void check_low_mappings(struct bt_shared *sh)
{
	char buf[4096], *line;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		child_fail(sh, "bt: cannot read /proc/self/maps: %s", strerror(errno));
	n = read(fd, buf, sizeof(buf) - 1); /* lowest addresses come first */
	close(fd);
	if (n <= 0)
		child_fail(sh, "bt: cannot read /proc/self/maps");
	buf[n] = 0;
	line = buf;
	unsigned long long start = strtoull(line, NULL, 16);
	if (start < (1ull << 32))
		child_fail(sh, "bt: the monitor has memory below 4 GiB (%.60s); build ring3 as a PIE",
			   strtok(line, "\n"));
}

/*
 * The filter. 64-bit system calls are allowed only from the runtime's two
 * syscall instructions, and only: rt_sigreturn, futex on the hand-off words,
 * modify_ldt, exit_group, and mmap/munmap/mprotect below 4 GiB (mmap only
 * MAP_FIXED, of the guest-RAM memfd or anonymous). Everything else — any
 * 32-bit call (the guest's INT 0x80) or a 64-bit one from anywhere else —
 * raises SIGSYS, which the runtime turns into a guest event or an escape
 * report (or, inside the runtime, kills the child).
 */
#define LD(off) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (off))
#define J(i, op, k, t, f) BPF_JUMP(BPF_JMP | (op) | BPF_K, (k), (t) - (i) - 1, (f) - (i) - 1)
#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))
#define ARG_HI(i) (ARG_LO(i) + 4)
#define IP_LO offsetof(struct seccomp_data, instruction_pointer)
#define IP_HI (IP_LO + 4)
enum { L_SIGRET = 15, L_FUTEX = 17, L_MMAP = 22, L_MEM = 27, L_ALLOW = 37, L_TRAP = 38 };

static int install_seccomp(struct bt_shared *sh, int memfd)
{
	uint64_t sys_ip = (uint64_t)rt_syscall_ip, ret_ip = (uint64_t)rt_restorer_ip;
	uint64_t fx = (uint64_t)&sh->turn;
	struct sock_filter f[] = {
		/*  0 */ LD(offsetof(struct seccomp_data, arch)),
		/*  1 */ J(1, BPF_JEQ, AUDIT_ARCH_X86_64, 2, L_TRAP),
		/*  2 */ LD(IP_HI),
		/*  3 */ J(3, BPF_JEQ, (uint32_t)(sys_ip >> 32), 4, L_TRAP),
		/*  4 */ LD(IP_LO),
		/*  5 */ J(5, BPF_JEQ, (uint32_t)ret_ip, L_SIGRET, 6),
		/*  6 */ J(6, BPF_JEQ, (uint32_t)sys_ip, 7, L_TRAP),
		/*  7 */ LD(offsetof(struct seccomp_data, nr)),
		/*  8 */ J(8, BPF_JEQ, SYS_exit_group, L_ALLOW, 9),
		/*  9 */ J(9, BPF_JEQ, SYS_modify_ldt, L_ALLOW, 10),
		/* 10 */ J(10, BPF_JEQ, SYS_munmap, L_MEM, 11),
		/* 11 */ J(11, BPF_JEQ, SYS_mprotect, L_MEM, 12),
		/* 12 */ J(12, BPF_JEQ, SYS_mmap, L_MMAP, 13),
		/* 13 */ J(13, BPF_JEQ, SYS_futex, L_FUTEX, 14),
		/* 14 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
		/* 15 L_SIGRET */ LD(offsetof(struct seccomp_data, nr)),
		/* 16 */ J(16, BPF_JEQ, SYS_rt_sigreturn, L_ALLOW, L_TRAP),
		/* 17 L_FUTEX: only on the hand-off words (the shared page's first 64 bytes) */
		LD(ARG_HI(0)),
		/* 18 */ J(18, BPF_JEQ, (uint32_t)(fx >> 32), 19, L_TRAP),
		/* 19 */ LD(ARG_LO(0)),
		/* 20 */ J(20, BPF_JGE, (uint32_t)fx, 21, L_TRAP),
		/* 21 */ J(21, BPF_JGE, (uint32_t)fx + 64, L_TRAP, L_ALLOW),
		/* 22 L_MMAP */ LD(ARG_LO(3)),
		/* 23 */ J(23, BPF_JSET, MAP_FIXED, 24, L_TRAP),
		/* 24 */ LD(ARG_LO(4)),
		/* 25 */ J(25, BPF_JEQ, (uint32_t)memfd, L_MEM, 26),
		/* 26 */ J(26, BPF_JEQ, 0xffffffffu, L_MEM, L_TRAP),
		/* 27 L_MEM: [addr, addr + len) below 4 GiB */ LD(ARG_HI(0)),
		/* 28 */ J(28, BPF_JEQ, 0, 29, L_TRAP),
		/* 29 */ LD(ARG_HI(1)),
		/* 30 */ J(30, BPF_JEQ, 0, 31, L_TRAP),
		/* 31 */ LD(ARG_LO(0)),
		/* 32 */ J(32, BPF_JEQ, 0, L_ALLOW, 33),
		/* 33 */ BPF_STMT(BPF_ALU | BPF_NEG, 0), /* 2^32 - addr */
		/* 34 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
		/* 35 */ LD(ARG_LO(1)),
		/* 36 */ BPF_JUMP(BPF_JMP | BPF_JGT | BPF_X, 0, L_TRAP - 37, L_ALLOW - 37),
		/* 37 L_ALLOW */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		/* 38 L_TRAP */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if ((sys_ip >> 32) != (ret_ip >> 32))
		return -EINVAL;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -errno;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
		return -errno;
	return 0;
}

static int set_handler(int sig)
{
	struct ksigaction ka = {
		.handler = rt_entry,
		.flags = SA_SIGINFO | SA_ONSTACK | SA_RESTORER_FLAG,
		.restorer = rt_restorer,
		.mask = ~0ull,
	};

	return (int)syscall(SYS_rt_sigaction, sig, &ka, NULL, 8);
}

/* In the child: never returns. */
static _Noreturn void child_main(struct vm *vm, struct bt_shared *sh, pid_t parent, unsigned role)
{
	static const int sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS, BT_SIGKICK };
	int memfd = vm->mem.fd;
	stack_t ss = { .ss_sp = altstack, .ss_size = ALTSTACK_SIZE };
	sigset_t none;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	setpgid(0, 0); /* no terminal signals: the monitor owns the terminal */
	prctl(PR_SET_NAME, role == BT_U ? "ring3-bt-user" : "ring3-bt-guest");
	for (int s = 1; s < 65; s++)
		if (s != SIGKILL && s != SIGSTOP)
			signal(s, SIG_DFL);
	check_low_mappings(sh);

	/* every file descriptor but guest RAM goes */
	if (memfd > 0)
		syscall(SYS_close_range, 0, memfd - 1, 0);
	syscall(SYS_close_range, memfd + 1, ~0u, 0);
	for (char **e = environ; e && *e; e++) /* the host's environment is none of its business */
		memset(*e, 0, strlen(*e));

	memset(&rt, 0, sizeof(rt));
	rt.sh = sh;
	rt.cpu = &sh->vcpu;
	rt.st = &sh->stats;
	rt.ram = vm->mem.host;
	rt.ram_size = vm->mem.region[0].size;
	rt.memfd = memfd;
	rt.role = role;
	rt.split = sh->split;
	__asm__ volatile("rdfsbase %0" : "=r"(rt_host_fsbase));
	rt.host_fsbase = rt_host_fsbase;
	/* page 0 is the guest's too, if we may map it (CAP_SYS_RAWIO) */
	void *p0 = mmap(NULL + 0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
			-1, 0);
	if (p0 == (void *)0) {
		rt.page0 = true;
		munmap(p0, 4096);
	}
	emu_init();
	if (seg_init() || mmu_init())
		child_fail(sh, "bt: cannot set up the guest's segments and memory");
	rt_translate = sh->translate && role == BT_K; /* U runs only ring 3, directly */
	rt_callout_int3 = sh->callout_int3;
	rt_translate_user = rt_translate && sh->translate_user && !sh->split;
	int terr = tcrun_init();
	if (terr)
		child_fail(sh, "bt: cannot set up the translation cache: %s", strerror(-terr));
	if (sigaltstack(&ss, NULL))
		child_fail(sh, "bt: sigaltstack: %s", strerror(errno));
	for (unsigned i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (set_handler(sigs[i]))
			child_fail(sh, "bt: sigaction(%d): %s", sigs[i], strerror(errno));

	/* the monitor learns of our death through this robust futex */
	robust_head.list.next = &robust_entry;
	robust_entry.next = &robust_head.list;
	uint32_t *alive = role == BT_U ? &sh->alive_u : &sh->alive;
	robust_head.futex_offset = (long)((char *)alive - (char *)&robust_entry);
	robust_head.list_op_pending = NULL;
	__atomic_store_n(alive, (uint32_t)gettid() | FUTEX_WAITERS, __ATOMIC_SEQ_CST);
	if (syscall(SYS_set_robust_list, &robust_head, sizeof(robust_head)))
		child_fail(sh, "bt: set_robust_list: %s", strerror(errno));

	rt_ro.role = role;
	if (mprotect(&rt_ro, sizeof(rt_ro), PROT_READ))
		child_fail(sh, "bt: mprotect: %s", strerror(errno));
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	int err = install_seccomp(sh, memfd);
	if (err)
		child_fail(sh, "bt: cannot install the seccomp filter: %s", strerror(-err));

	/* from here on: rt_syscall only */
	if (role == BT_K) {
		memset(&sh->exit, 0, sizeof(sh->exit));
		rt_exit_wait(BT_EXIT_READY);
	}
	rt.armed = true;
	__asm__ volatile("int3"); /* the first entry: rt_signal loads the guest's state */
	for (;;)
		rt_syscall(SYS_exit_group, 1, 0, 0, 0, 0);
}

int sandbox_spawn(struct vm *vm, struct bt_shared *sh, unsigned role, pid_t *pid)
{
	pid_t parent = getpid(), p;

	if (!(getauxval(AT_HWCAP2) & 2 /* HWCAP2_FSGSBASE */))
		return -ENOTSUP;
	if (role == BT_K)
		__atomic_store_n(&sh->turn, BT_TURN_CHILD, __ATOMIC_SEQ_CST);
	fflush(NULL);
	p = fork();
	if (p < 0)
		return -errno;
	if (p == 0)
		child_main(vm, sh, parent, role);
	*pid = p;
	return 0;
}

/* Why the child is gone, in one line; 0 if it is still running. */
int sandbox_reap(pid_t pid, struct bt_shared *sh, char *msg, size_t len)
{
	int st;
	pid_t r = waitpid(pid, &st, WNOHANG);

	if (r == 0)
		return 0;
	if (r < 0) {
		snprintf(msg, len, "bt: the sandbox child is gone (%s)", strerror(errno));
		return 1;
	}
	if (WIFEXITED(st))
		snprintf(msg, len, "bt: the sandbox child exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS && !__atomic_load_n(&sh->in_runtime, __ATOMIC_RELAXED))
		snprintf(msg, len, "bt: the guest escaped its sandbox (a blocked host system call); "
				   "VM stopped");
	else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS)
		snprintf(msg, len, "bt: runtime bug: a forbidden system call in the sandbox child");
	else if (WIFSIGNALED(st))
		snprintf(msg, len, "bt: the sandbox child died of signal %d (%s)", WTERMSIG(st),
			 strsignal(WTERMSIG(st)));
	else
		snprintf(msg, len, "bt: the sandbox child stopped (status %#x)", st);
	return 1;
}

void sandbox_kill(pid_t pid)
{
	int st;

	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
}
