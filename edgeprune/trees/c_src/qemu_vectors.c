/* Reset vector for counting a tree model's instructions under QEMU (edgeprune/trees/tree_latency.py).
 * QEMU's M-profile machines read the initial stack pointer and reset handler from address 0;
 * newlib's rdimon start-up (_start) then sets up the C runtime and exits through semihosting.
 * STACK_TOP is the machine's RAM top; ENABLE_FPU grants CP10/CP11 access (CPACR) first. */
extern void _start(void);

static void edgeprune_reset(void) {
#ifdef ENABLE_FPU
    *(volatile unsigned *)0xE000ED88u |= 0xFu << 20;
    __asm volatile("dsb\n isb");
#endif
    _start();
}

__attribute__((section(".vectors"), used)) void (*const edgeprune_vectors[2])(void) = {
    (void (*)(void))STACK_TOP, edgeprune_reset};
