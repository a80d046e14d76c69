"""A sweep worker's Ctrl-C: raised inside a trial's objective, only noted between
trials (where optuna's ask and tell would leave a trial RUNNING), and raised as the
next objective starts or by the loop's check. test_sweep_resume.py drives a real
sweep through it."""

from __future__ import annotations

import signal
from types import SimpleNamespace

import pytest

from edgeprune.sweep import interrupts, study


def _ctrl_c() -> None:
    signal.raise_signal(signal.SIGINT)


def test_between_trials_a_ctrl_c_is_noted_and_raised_by_the_loops_check():
    with interrupts.deferred():
        _ctrl_c()  # as if inside optuna's ask or tell: nothing raised here
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
        interrupts.check()  # raised once
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_inside_a_trial_it_raises_and_a_second_one_waits_for_the_cleanup():
    cleaned = []
    with interrupts.deferred():
        with pytest.raises(KeyboardInterrupt), interrupts.armed():
            try:
                _ctrl_c()
                pytest.fail("Ctrl-C inside the objective did not interrupt it")
            finally:
                _ctrl_c()  # the parent's second one, as the trial removes its folder
                cleaned.append(True)
        assert cleaned == [True]  # the cleanup was not cut short
        _ctrl_c()  # and one while optuna writes the trial's failure
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()


class _Trial:
    def __init__(self):
        self.user_attrs, self.params = {}, {}

    def set_user_attr(self, key, value):
        self.user_attrs[key] = value


def test_a_ctrl_c_while_optuna_asked_fails_the_new_trial_as_interrupted(monkeypatch):
    started = []
    monkeypatch.setattr(study, "surplus", lambda trial, wanted: False)
    monkeypatch.setattr(study, "suggest", lambda trial, space: trial.params.update(width=0.5))
    monkeypatch.setattr(study, "_measure", lambda spec, trial, params, t0: started.append(trial))
    spec = SimpleNamespace(trials=4, space=None)
    trial = _Trial()
    with interrupts.deferred():
        _ctrl_c()  # the trial exists (RUNNING) but its objective has not started
        with pytest.raises(KeyboardInterrupt):
            study._objective(spec, trial)
    assert started == []  # no work began on it
    assert trial.user_attrs == {"interrupted": True, "error": "interrupted"}
    assert trial.params == {"width": 0.5}  # chosen first: the rerun runs the same point
    # with no handler installed (a thread, or a caller of its own) nothing changes
    assert study._objective(spec, trial) is None and started == [trial]


def test_a_failure_that_came_with_a_ctrl_c_is_the_interruption(monkeypatch):
    # The Ctrl-C ends the worker's TFLite Micro process too: the trial can fail on
    # the crashed process (or a library turn the KeyboardInterrupt into its own error)
    def crashes(spec, trial, params, t0):
        try:
            _ctrl_c()
        except KeyboardInterrupt:
            raise RuntimeError("the TFLite Micro worker crashed") from None

    monkeypatch.setattr(study, "surplus", lambda trial, wanted: False)
    monkeypatch.setattr(study, "suggest", lambda trial, space: None)
    monkeypatch.setattr(study, "_measure", crashes)
    spec, trial = SimpleNamespace(trials=4, space=None), _Trial()
    with interrupts.deferred():
        with pytest.raises(KeyboardInterrupt):
            study._objective(spec, trial)
    assert trial.user_attrs == {"interrupted": True, "error": "interrupted"}

    def fails(spec, trial, params, t0):
        raise RuntimeError("a real failure")

    monkeypatch.setattr(study, "_measure", fails)
    trial = _Trial()
    with interrupts.deferred(), pytest.raises(RuntimeError, match="a real failure"):
        study._objective(spec, trial)
    assert trial.user_attrs == {}  # no Ctrl-C: the failure is the trial's own
