"""A tree model's serial validation harness as a host program: the board the serial
runner talks to over a pty in the tree tests (stdin/stdout stand for the UART)."""

from __future__ import annotations

_MAIN = """#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include "tree_harness.h"
extern const ep_tree_model NAME_tree_model;
static void put(void *c, const uint8_t *d, size_t n) {
    (void)c;
    while (n) { ssize_t k = write(1, d, n); if (k <= 0) return; d += k; n -= (size_t)k; }
}
static uint64_t ns(void *c) {
    (void)c;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}
static ep_tree_harness h;
int main(void) {
    ep_tree_transport link = {put, ns, 0};
    ep_tree_init(&h, &NAME_tree_model, 1000000000u, link);
    uint8_t b;
    while (read(0, &b, 1) == 1) ep_tree_receive(&h, b);
    return 0;
}
"""


def board_main(name: str) -> str:
    """The C ``main`` of a host board serving the model whose C name is ``name``."""
    return _MAIN.replace("NAME", name)
