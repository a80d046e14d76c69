"""The Pareto front on hand-made trials: directions, ties, duplicates, infeasible points."""

from __future__ import annotations

import pytest

from edgeprune.sweep.front import dominates, pareto_front

MAX_MIN = ["maximize", "minimize"]  # accuracy up, latency down


def _p(number, accuracy, latency, feasible=True):
    return {"number": number, "values": [accuracy, latency], "feasible": feasible}


def test_front_keeps_the_trade_off_and_drops_dominated_points():
    points = [
        _p(0, 0.90, 5.0),  # fast, less accurate: on the front
        _p(1, 0.95, 8.0),  # on the front
        _p(2, 0.97, 12.0),  # most accurate: on the front
        _p(3, 0.94, 9.0),  # worse than 1 on both
        _p(4, 0.90, 6.0),  # same accuracy as 0, slower
    ]
    assert pareto_front(points, MAX_MIN) == [0, 1, 2]


def test_infeasible_points_never_reach_the_front_even_when_they_dominate():
    points = [_p(0, 0.90, 8.0), _p(1, 0.99, 1.0, feasible=False), _p(2, 0.80, 9.0)]
    assert pareto_front(points, MAX_MIN) == [0]


def test_duplicates_are_all_kept_and_a_tie_on_one_axis_decides_on_the_other():
    points = [_p(3, 0.95, 8.0), _p(1, 0.95, 8.0), _p(2, 0.95, 7.0), _p(0, 0.96, 8.0)]
    # 2 is as accurate as 1 and 3 and faster: they are dominated; 0 trades speed for accuracy
    assert pareto_front(points, MAX_MIN) == [0, 2]
    assert pareto_front([_p(5, 0.9, 4.0), _p(4, 0.9, 4.0)], MAX_MIN) == [4, 5]


def test_directions_decide_which_end_is_better():
    points = [_p(0, 0.1, 5.0), _p(1, 0.2, 5.0)]
    assert pareto_front(points, ["maximize", "minimize"]) == [1]
    assert pareto_front(points, ["minimize", "minimize"]) == [0]  # e.g. MSE
    three = [
        {"number": 0, "values": [0.9, 5.0, 100], "feasible": True},
        {"number": 1, "values": [0.9, 5.0, 90], "feasible": True},
        {"number": 2, "values": [0.8, 4.0, 200], "feasible": True},
    ]
    assert pareto_front(three, ["maximize", "minimize", "minimize"]) == [1, 2]


def test_points_missing_a_value_and_bad_directions_are_handled():
    assert pareto_front([_p(0, None, 5.0), _p(1, 0.5, 9.0)], MAX_MIN) == [1]
    assert pareto_front([], MAX_MIN) == []
    with pytest.raises(ValueError, match="neither maximize nor minimize"):
        dominates([1.0], [2.0], ["up"])
    with pytest.raises(ValueError, match="2 values for 3 directions"):
        pareto_front([_p(0, 0.5, 1.0)], ["maximize", "minimize", "minimize"])
