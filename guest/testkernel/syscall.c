/*
 * INT 0x80 from ring 3. The gate is DPL 3 so user code may use it; the CPU
 * switched to the task's kernel stack (TSS ESP0/SS0) before we got here.
 * Intel SDM vol. 3 §6.12.1; numbers and registers in user.h.
 */
#include "task.h"

void syscall(struct trapframe *tf)
{
	struct task *t = task_current();
	uint8_t *frame = (uint8_t *)tf;

	if (frame >= t->kstack && frame < t->kstack + KSTACK_SIZE)
		t->esp0_hits++;
	else
		t->esp0_miss++;

	switch (tf->eax) {
	case SYS_EXIT:
		task_exit();
	case SYS_NOP:
		tf->eax = 0;
		break;
	case SYS_ADD:
		tf->eax = tf->ebx + tf->ecx;
		break;
	case SYS_REPORT:
		if (tf->ebx < NR_REPORTS)
			t->report[tf->ebx] = tf->ecx;
		tf->eax = 0;
		break;
	case SYS_PROBE:
		if (t->armed_slot < NR_PROBES)
			t->probe[t->armed_slot].armed = 0;
		t->armed_slot = tf->ebx;
		if (tf->ebx < NR_PROBES) {
			struct probe *p = &t->probe[tf->ebx];
			p->armed = 1;
			p->resume = tf->ecx;
			p->vector = PROBE_NONE;
		}
		tf->eax = 0;
		break;
	case SYS_SLICES:
		tf->eax = t->slices;
		break;
	case SYS_PAGE_USER: {
		/* the task's own tables (CR3), not the kernel's: its image is its own */
		uint32_t va = tf->ebx, *pd = (uint32_t *)(read_cr3() & PTE_FRAME);
		uint32_t pde = va < USER_STACK_TOP && va >= USER_BASE ? pd[PDX(va)] : 0, *pte;

		tf->eax = (uint32_t)-1;
		if (!(pde & PTE_P) || (pde & PTE_PS))
			break;
		pte = &((uint32_t *)(pde & PTE_FRAME))[PTX(va)];
		if (!(*pte & PTE_P))
			break;
		pte_write(pte, tf->ecx ? *pte | PTE_U : *pte & ~PTE_U);
		write_cr3(read_cr3()); /* a flush, as a kernel makes after taking a page away */
		tf->eax = 0;
		break;
	}
	default:
		tf->eax = (uint32_t)-1;
		break;
	}
}
