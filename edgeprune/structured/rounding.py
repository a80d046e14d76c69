"""Kept channel counts rounded to a multiple the target's kernels prefer.

CMSIS-NN and ESP-NN process channels in SIMD-wide steps and leave the rest to
a scalar tail, so a layer cut to 17 channels runs its last one slowly; hence the
defaults of ``edgeprune.target.KERNEL_CHANNEL_MULTIPLE``. CMSIS-NN's int8 paths
for cores with the DSP extension (Cortex-M4/M7/M33) take four int8 values per
32-bit load: the im2col matrix kernel's ``num_col_a / 4``
(arm_nn_mat_mult_kernel_s8_s16.c), the 3x3 depthwise kernel's ``in_ch += 4``
(arm_depthwise_conv_3x3_s8.c), the depthwise ``_opt`` kernel's ``output_ch / 4``,
the fully connected kernel's ``rhs_cols / 4`` (arm_nn_vec_mat_mult_t_s8.c;
CMSIS-NN 4ab83cc). ESP-NN's ESP32-S3 assembly runs a 1x1 convolution only when
``channels % 8 == 0``, and its multiplier-1 depthwise fast paths likewise
(esp_nn_conv_esp32s3.c, esp_nn_depthwise_conv_s8_esp32s3.c; esp-nn d45b843),
the rest in C. XNNPACK and the reference kernels have no such preference. After the ranking has
chosen which channels to remove, :func:`round_removal` moves each layer's kept
count to the nearest multiple, putting back the best removed channels or
removing the next weakest kept ones.

What is rounded is a *part* of a group: the channels carried by the same set
of producers. In the usual group (one convolution, or the convolutions of a
residual Add) that is the whole group; where a Concatenate feeds a merge, the
concatenated producers each own a part, and every producer's width, a sum of
parts, is then a multiple too.

A part's kept count goes to the nearest of: the multiples between its floor
(at least one channel; the global ranking's per-layer floor) and its width,
and its width itself (a layer the ranking left whole keeps its width, multiple
or not). Ties keep more. A part narrower than the multiple, or whose floor
leaves no multiple below its width, keeps the count the ranking chose (never
fewer than its floor).
Rounding is monotone: removing more before rounding never keeps more after, so
bisections over the amount removed stay valid.
"""

from __future__ import annotations

import math

import numpy as np

from edgeprune.structured.graph import ChannelGraph


def nearest_multiple(kept: int, width: int, multiple: int, least: int = 1) -> int:
    """``kept`` of ``width`` channels rounded to the nearest multiple of ``multiple``
    in ``[least, width]``, or to ``width`` when that is nearer (ties keep more).
    When no multiple lies in that range, ``kept`` (raised to ``least``) is kept."""
    if multiple <= 1 or kept >= width:
        return kept
    lo = max(multiple, math.ceil(max(least, 1) / multiple) * multiple)
    if lo > width:
        return max(kept, min(least, width))
    below = max(lo, kept // multiple * multiple)
    above = min(below + multiple, width) if below < kept else below
    return above if above - kept <= kept - below else below


def parts(graph: ChannelGraph) -> list[list[int]]:
    """The channel roots of every prunable group, split by the set of producers
    that carry them, each part in the group's channel order."""
    out = []
    for group in graph.prunable_groups:
        carriers: dict[int, set[str]] = {r: set() for r in group.channels}
        for producer in group.producers:
            for atom in graph.atoms[producer]:
                carriers[graph.root(atom)].add(producer)
        by_carriers: dict[frozenset, list[int]] = {}
        for r in group.channels:
            by_carriers.setdefault(frozenset(carriers[r]), []).append(r)
        out.extend(by_carriers.values())
    return out


def round_removal(
    graph: ChannelGraph,
    scores: dict[int, float],
    removed: set[int],
    multiple: int,
    floor: float = 0.0,
) -> set[int]:
    """``removed`` changed so that each part keeps a multiple of ``multiple``
    channels (see the module docstring); the weakest channels (by ``scores``,
    then root) are the ones removed. ``floor`` is the fraction of each part
    always kept."""
    if multiple <= 1:
        return set(removed)
    out = set(removed)
    for part in parts(graph):
        width = len(part)
        kept = width - sum(r in removed for r in part)
        least = max(1, math.ceil(floor * width))
        goal = nearest_multiple(kept, width, multiple, least)
        if goal == kept:
            continue
        order = sorted(part, key=lambda r: (scores.get(r, 0.0), r))  # weakest first
        if goal < kept:  # remove the weakest channels still kept
            out.update([r for r in order if r not in out][: kept - goal])
        else:  # put back the strongest channels removed
            out.difference_update([r for r in reversed(order) if r in out][: goal - kept])
    return out


def blocks_to_restore(
    graph: ChannelGraph, scores: dict[int, float], removed: set[int], multiple: int
) -> list[tuple[int, set[int]]]:
    """Removal sets one block narrower than ``removed``, each with its part's first
    root: per part with removed
    channels, its ``multiple`` strongest removed channels put back (fewer when
    that reaches the part's width), best block first (its channels' scores over
    their part's mean). The coarse steps of rounded widths can leave a goal met
    with room to spare; putting blocks back while it stays met uses that room."""
    candidates = []
    for part in parts(graph):
        gone = sorted((r for r in part if r in removed), key=lambda r: (-scores.get(r, 0.0), r))
        if not gone:
            continue
        kept = len(part) - len(gone)
        step = multiple - kept % multiple if kept % multiple else multiple
        block = gone[: min(step, len(gone))]
        mean = float(np.mean([scores.get(r, 0.0) for r in part])) or 1.0
        strength = sum(scores.get(r, 0.0) for r in block) / mean / len(block)
        candidates.append((-strength, part[0], set(removed) - set(block)))
    return [(key, c) for _, key, c in sorted(candidates, key=lambda c: (c[0], c[1]))]
