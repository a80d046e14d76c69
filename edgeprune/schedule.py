"""Pruning schedules planned so that they finish, checked before training starts.

tfmot updates a layer's mask during training step ``s`` (``s = 1, 2, ...``:
``UpdatePruningStep`` sets the step counter to 0 when training begins and the
wrapper increments it before the mask update of each batch) when ``s`` lies in
``[begin_step, end_step]`` and ``(s - begin_step) % frequency == 0``. A
polynomial schedule reaches its final sparsity only at ``s == end_step``; if
that step is never a mask update, or lies past the last training step,
tfmot silently prunes less. :func:`plan_schedule` simulates exactly those
rules, without TensorFlow, and refuses a schedule that cannot finish.

m-by-n pruning ignores the schedule: tfmot sets the m-by-n mask once, at
step 1, and keeps it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from edgeprune.errors import ScheduleError
from edgeprune.recipe_options import PruneOptions

# About this many mask updates over a derived schedule: enough for gradual
# pruning, few enough that each update has fine-tuning steps after it.
TARGET_MASK_UPDATES = 16


@dataclass(frozen=True)
class SchedulePlan:
    """The tfmot schedule parameters and what they will achieve."""

    kind: str
    initial_sparsity: float
    final_sparsity: float
    power: float
    begin_step: int
    end_step: int  # -1: constant schedule prunes until training ends
    frequency: int
    steps_per_epoch: int
    epochs: int
    total_steps: int
    mask_updates: int
    last_update_step: int
    reached_sparsity: float
    derived: bool

    def to_dict(self) -> dict:
        return asdict(self)


def sparsity_at(
    kind: str, step: int, *, initial: float, final: float, power: float, begin: int, end: int
) -> float:
    """The sparsity the schedule asks for at ``step`` (tfmot's formula)."""
    if kind == "constant":
        return final
    p = min(1.0, max(0.0, (step - begin) / (end - begin)))
    return final + (initial - final) * (1.0 - p) ** power


def _divisor_near(span: int, target: int) -> int:
    """The largest divisor of ``span`` not above ``target`` (at least 1)."""
    for d in range(max(1, min(target, span)), 0, -1):
        if span % d == 0:
            return d
    return 1


def _update_steps(begin: int, end: int, frequency: int, total: int) -> range:
    first = max(begin, 1)
    first += (-(first - begin)) % frequency  # next step on the frequency grid
    last = total if end < 0 else min(end, total)
    return range(first, last + 1, frequency)


def plan_schedule(opts: PruneOptions, n_train: int) -> SchedulePlan:
    """Derive (or check) begin/end steps and frequency for ``n_train`` samples.

    Unset ``begin_step``/``end_step``/``frequency`` are derived from the data
    and epochs: pruning starts at step 0, ends after ``end_fraction`` of the
    fine-tuning steps on a mask-update step, and updates masks about
    :data:`TARGET_MASK_UPDATES` times. The remaining steps fine-tune at the
    final sparsity.

    Raises:
        ScheduleError: the schedule cannot reach ``final_sparsity`` within the
            training steps.
    """
    steps_per_epoch = math.ceil(n_train / opts.batch_size)
    total = steps_per_epoch * opts.epochs
    derived = opts.begin_step is None or opts.end_step is None or opts.frequency is None
    begin = opts.begin_step if opts.begin_step is not None else 0
    if opts.pattern == "m_by_n":
        m, n = opts.m_by_n
        return SchedulePlan(
            "m_by_n",
            0.0,
            m / n,
            0.0,
            0,
            1,
            1,
            steps_per_epoch,
            opts.epochs,
            total,
            1,
            1,
            m / n,
            False,
        )
    where = (
        f"fine-tuning runs {total} steps ({opts.epochs} epochs x {steps_per_epoch} "
        f"batches of {opts.batch_size})"
    )
    if begin >= total:
        raise ScheduleError(
            f"prune.begin_step = {begin} but {where}; lower prune.begin_step or raise prune.epochs"
        )
    if opts.schedule == "constant":
        end = opts.end_step if opts.end_step is not None else -1
        span = (end if end > 0 else total) - begin
        frequency = opts.frequency or max(1, min(100, span // TARGET_MASK_UPDATES))
    else:
        if opts.end_step is not None:
            end = opts.end_step
        else:
            span = max(1, int((total - begin) * opts.end_fraction))
            end = begin + span
        if opts.frequency:
            frequency = opts.frequency
        elif opts.end_step is not None:
            frequency = _divisor_near(end - begin, (end - begin) // TARGET_MASK_UPDATES)
        else:
            frequency = max(1, (end - begin) // TARGET_MASK_UPDATES)
        if opts.end_step is None:
            # Snap the derived end onto the frequency grid so that it is an update step.
            end = begin + max(frequency, (end - begin) // frequency * frequency)
    updates = _update_steps(begin, end, frequency, total)
    kw = dict(
        initial=opts.initial_sparsity,
        final=opts.final_sparsity,
        power=opts.power,
        begin=begin,
        end=end,
    )
    reached = sparsity_at(opts.schedule, updates[-1], **kw) if len(updates) else 0.0
    plan = SchedulePlan(
        opts.schedule,
        opts.initial_sparsity,
        opts.final_sparsity,
        opts.power,
        begin,
        end,
        frequency,
        steps_per_epoch,
        opts.epochs,
        total,
        len(updates),
        updates[-1] if len(updates) else -1,
        reached,
        derived,
    )
    if opts.final_sparsity > 0 and not len(updates):
        first = begin + frequency if begin == 0 else begin
        if 0 < end < first:
            raise ScheduleError(
                f"the {opts.schedule} schedule never updates its masks: its first update "
                f"(step {first}) comes after prune.end_step = {end}; lower prune.frequency or "
                f"raise prune.end_step"
            )
        raise ScheduleError(
            f"the {opts.schedule} schedule never updates its masks: the first update step "
            f"comes after the last training step ({where}, frequency {frequency}); lower "
            f"prune.frequency or raise prune.epochs"
        )
    if reached + 1e-9 < opts.final_sparsity:
        if opts.schedule == "polynomial_decay" and end > total:
            why = f"it ends at step {end}"
            fix = "lower prune.end_step or raise prune.epochs"
        elif opts.schedule == "polynomial_decay" and (end - begin) % frequency:
            why = (
                f"its last mask update is at step {updates[-1]} and reaches "
                f"{reached:.4f}; step {end} is not a multiple of prune.frequency = "
                f"{frequency} after prune.begin_step = {begin}"
            )
            fix = "make end_step - begin_step a multiple of prune.frequency"
        else:
            why = f"its last mask update, at step {updates[-1]}, asks for {reached:.4f}"
            fix = "check the schedule's steps"
        raise ScheduleError(
            f"the {opts.schedule} schedule cannot reach final_sparsity "
            f"{opts.final_sparsity}: {why}, but {where}; {fix}"
        )
    return plan
