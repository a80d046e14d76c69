"""Pruning a tree model: one tree-level method on every member, then ensemble pruning.

:func:`prune` is the one entry point. Every choice (a pre-pruning setting, a
cost-complexity alpha, how many members to keep) is made on the validation
split; the test split never reaches this module. The tree-level algorithms are
in :mod:`.prune_tree`, the member orderings in :mod:`.prune_ensemble`.

With a budget (``max_nodes`` and/or a ``fits`` predicate, the "fit" goal), the
candidates of every stage are pooled and the most accurate on validation that
passes the budget is returned (the largest among equally accurate ones).
``fits`` is called from the most accurate down; once a candidate fails, no
candidate at least as large is tried (size on the device grows with nodes), so
it is called only a few times.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from edgeprune.errors import BadInputError, DataError, RecipeError
from edgeprune.trees import oob, prune_ensemble, prune_guard, prune_tree
from edgeprune.trees.model import CLASSIFICATION, Forest, model_inputs
from edgeprune.trees.prune_ensemble import ENSEMBLE_FLOOR, default_size
from edgeprune.trees.train import TreeOptions, check_xy, train

log = logging.getLogger(__name__)

METHODS = ("none", "pre", "ccp", "reduced_error", "mdl")
CCP_RULES = ("best", "1se")
ENSEMBLES = ("none", "greedy", "ordered")
LEAVES = ("fractions", "votes", "quantized")
CHOOSE_ON = ("validation", "oob")
REDUCED_ERROR_RULES = ("not_worse", "better")
# Pre-pruning grid: each combination is refitted on the training split.
PRE_MAX_DEPTH = (None, 3, 5, 8, 12)
PRE_MIN_SAMPLES_LEAF = (1, 3, 10)
PRE_MIN_IMPURITY_DECREASE = (0.0, 0.001, 0.01)
# A forest's alpha candidates: the union of its members' paths, at most this many
# (evenly spaced quantiles of it, 0 and the largest included). A single tree's
# whole path is always tried.
MAX_CCP_CANDIDATES = 48


class GoalUnreachableError(BadInputError):
    """No pruned candidate passes the budget; the message names the smallest one."""


@dataclass(frozen=True)
class PruneOptions:
    """How to prune (the recipe's ``[trees.prune]`` section).

    ``method``: "none", "pre", "ccp", "reduced_error" or "mdl" (applied to every
    member); ``ccp_rule``: "best" (the most accurate alpha on validation) or
    "1se" (the largest alpha within one standard error of it); ``ensemble``:
    "none", "greedy" or "ordered"; ``members``: keep exactly this many members
    (needs an ensemble method); ``max_nodes``: the most accurate candidate with
    at most this many nodes in all; ``leaves``: "fractions" (each leaf keeps its
    class fractions, scikit-learn's soft vote), "votes" (after the other steps,
    each classifier leaf votes for its majority class: see
    :func:`prune_ensemble.vote_leaves`) or "quantized" (the fractions in 256ths, a
    byte per class in the C: :func:`prune_ensemble.quantize_leaves`); a regressor's
    leaves are left as they are;
    ``choose_on``: "validation" or "oob" (reduced-error pruning and the member
    order and count judged on each member's out-of-bag rows pooled with
    validation, see :mod:`.oob`; validation alone where the model has no
    bootstrap record); ``reduced_error_rule``: "not_worse" (Quinlan: ties prune)
    or "better" (prune only when the leaf makes strictly fewer errors);
    ``min_members_fraction``: the share of members the default member count keeps
    at least (:func:`default_size`); ``max_accuracy_drop``: the accuracy guard
    (:mod:`.prune_guard`; a fraction, or regression's relative MSE rise; 1.0 is
    off; not applied under a budget). Raises :class:`RecipeError` on a bad value.
    """

    method: str = "none"
    ccp_rule: str = "best"
    ensemble: str = "none"
    members: int | None = None
    max_nodes: int | None = None
    leaves: str = "fractions"
    choose_on: str = "validation"
    reduced_error_rule: str = "not_worse"
    min_members_fraction: float = ENSEMBLE_FLOOR
    max_accuracy_drop: float = 1.0

    def __post_init__(self):
        for key, value, allowed in (
            ("method", self.method, METHODS),
            ("ccp_rule", self.ccp_rule, CCP_RULES),
            ("ensemble", self.ensemble, ENSEMBLES),
            ("leaves", self.leaves, LEAVES),
            ("choose_on", self.choose_on, CHOOSE_ON),
            ("reduced_error_rule", self.reduced_error_rule, REDUCED_ERROR_RULES),
        ):
            if value not in allowed:
                raise RecipeError(
                    f"trees.prune.{key} is {value!r}; use one of {', '.join(allowed)}"
                )
        for key, value in (("members", self.members), ("max_nodes", self.max_nodes)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise RecipeError(f"trees.prune.{key} is {value!r}; use a whole number >= 1")
            if value is not None and value < 1:
                raise RecipeError(f"trees.prune.{key} is {value!r}; use a whole number >= 1")
        share = self.min_members_fraction
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
            raise RecipeError(
                f"trees.prune.min_members_fraction is {share!r}; use a number in (0, 1]"
            )
        drop = self.max_accuracy_drop
        if isinstance(drop, bool) or not isinstance(drop, int | float) or not 0 <= drop <= 1:
            raise RecipeError(
                f"trees.prune.max_accuracy_drop is {drop!r}; use a fraction in [0, 1] (1 is off)"
            )
        if self.members is not None and self.ensemble == "none":
            raise RecipeError(
                'trees.prune.members keeps a number of members: set ensemble = "greedy" or '
                '"ordered" too'
            )


@dataclass(frozen=True)
class PruneOutcome:
    """The pruned forest and one dict per algorithm applied (name, parameters
    chosen, nodes/members/validation metric before and after)."""

    forest: Forest
    steps: tuple[dict, ...]


@dataclass(frozen=True)
class _Candidate:
    forest: Forest
    parameters: dict


def metric_name(task: str) -> str:
    return "accuracy" if task == CLASSIFICATION else "mse"


def validation_metric(forest: Forest, x, y) -> float:
    """Accuracy (classification) or mean squared error (regression) on ``(x, y)``."""
    pred = forest.predict(x)
    if forest.task == CLASSIFICATION:
        return float(np.mean(pred == np.asarray(y)))
    return float(np.mean((pred - np.asarray(y, dtype=np.float64)) ** 2))


def _score(forest: Forest, x, y) -> float:
    """Higher is better: accuracy, or -MSE."""
    m = validation_metric(forest, x, y)
    return m if forest.task == CLASSIFICATION else -m


def _standard_error(forest: Forest, x, y) -> float:
    """The standard error of the validation error (binomial, or of the squared errors)."""
    pred, n = forest.predict(x), len(y)
    if forest.task == CLASSIFICATION:
        e = float(np.mean(pred != np.asarray(y)))
        return float(np.sqrt(e * (1 - e) / n))
    sq = (pred - np.asarray(y, dtype=np.float64)) ** 2
    return float(np.std(sq, ddof=1) / np.sqrt(n)) if n > 1 else 0.0


def _pick_best(cands: list[_Candidate], x, y) -> int:
    """The most accurate candidate on validation; ties go to the fewest nodes."""
    keys = [(-_score(c.forest, x, y), c.forest.n_nodes, i) for i, c in enumerate(cands)]
    return min(keys)[2]


def pre_candidates(forest, train_data, tree_options: TreeOptions | None) -> list[_Candidate]:
    """Refits over the pre-pruning grid (depth, leaf size, impurity decrease).

    Raises:
        BadInputError: no training data or no tree options (a model read from a file).
    """
    if train_data is None or tree_options is None:
        raise BadInputError(
            "pre-pruning refits the model, so it needs the training data and the [trees] "
            'options; for a model read from a file use method = "ccp", "reduced_error" or "mdl"'
        )
    x, y = model_inputs(forest, train_data[0]), train_data[1]
    keep = {"features": forest.meta["features"]} if "features" in forest.meta else {}
    cands = []
    for depth in PRE_MAX_DEPTH:
        for leaf in PRE_MIN_SAMPLES_LEAF:
            for decrease in PRE_MIN_IMPURITY_DECREASE:
                opts = replace(
                    tree_options,
                    max_depth=depth,
                    min_samples_leaf=leaf,
                    min_impurity_decrease=decrease,
                )
                params = {"max_depth": depth, "min_samples_leaf": leaf}
                params["min_impurity_decrease"] = decrease
                fitted = train(opts, x, y, forest.task)
                cands.append(_Candidate(fitted.with_trees(fitted.trees, **keep), params))
    return cands


def ccp_alphas(paths: list[prune_tree.CcpPath]) -> np.ndarray:
    """The alphas to try: every distinct alpha of a single tree's path; for a
    forest at most :data:`MAX_CCP_CANDIDATES` quantiles of the members' union."""
    alphas = np.unique(np.concatenate([p.alphas for p in paths]))
    if len(paths) == 1 or len(alphas) <= MAX_CCP_CANDIDATES:
        return alphas
    picks = np.quantile(alphas, np.linspace(0, 1, MAX_CCP_CANDIDATES), method="lower")
    return np.unique(picks)


def ccp_candidates(forest: Forest) -> list[_Candidate]:
    """The forest pruned at each alpha of :func:`ccp_alphas` (one alpha for all members)."""
    paths = [prune_tree.ccp_path(t) for t in forest.trees]
    out = []
    for alpha in ccp_alphas(paths):
        trees = [
            prune_tree.ccp_prune(t, alpha, p) for t, p in zip(forest.trees, paths, strict=True)
        ]
        out.append(_Candidate(forest.with_trees(trees), {"alpha": float(alpha)}))
    return out


def choose_ccp(cands: list[_Candidate], rule: str, x, y) -> int:
    """The index of the alpha ``rule`` picks: "best", or "1se": the largest alpha
    whose validation error is at most the best's plus one standard error."""
    best = _pick_best(cands, x, y)
    if rule == "best":
        return best
    limit = -_score(cands[best].forest, x, y) + _standard_error(cands[best].forest, x, y)
    within = [i for i, c in enumerate(cands) if -_score(c.forest, x, y) <= limit + 1e-12]
    return max(within, key=lambda i: cands[i].parameters["alpha"])


def tree_level(forest, options, train_data, val_data, tree_options, evaluation=None):
    """(candidates, the index the method's own rule chooses) for ``options.method``;
    reduced-error pruning judges member ``t`` on ``evaluation.rows(t)`` when given."""
    method = options.method
    x_val, y_val = val_data if val_data is not None else (None, None)
    if method == "none":
        return [_Candidate(forest, {})], 0
    if method == "mdl":
        trees = [
            prune_tree.mdl_prune(t, forest.n_features, len(forest.classes), forest.task)
            for t in forest.trees
        ]
        return [_Candidate(forest.with_trees(trees), {})], 0
    _need_validation(val_data, method)
    if method == "reduced_error":
        ev = evaluation or oob.validation_only(forest.n_members, val_data)
        strict = options.reduced_error_rule == "better"
        trees = [
            prune_tree.reduced_error_prune(t, *ev.rows(i), forest.task, forest.classes, strict)
            for i, t in enumerate(forest.trees)
        ]
        params = {"rule": options.reduced_error_rule, "judged_on": ev.source}
        return [_Candidate(forest.with_trees(trees), params)], 0
    if method == "ccp":
        cands = ccp_candidates(forest)
        return cands, choose_ccp(cands, options.ccp_rule, x_val, y_val)
    cands = pre_candidates(forest, train_data, tree_options)
    return cands, _pick_best(cands, x_val, y_val)


def _need_validation(val_data, what: str) -> None:
    if val_data is None:
        raise BadInputError(
            f"{what} pruning chooses on a validation split and none was given; pass x_val/y_val "
            "or let edgeprune hold out part of the training data"
        )


def _step(name, params, before: Forest, after: Forest, x_val, y_val) -> dict:
    step = {
        "name": name,
        "parameters": params,
        "nodes_before": before.n_nodes,
        "nodes_after": after.n_nodes,
        "members_before": before.n_members,
        "members_after": after.n_members,
        "metric": metric_name(before.task),
    }
    if x_val is not None:
        step["validation_before"] = validation_metric(before, x_val, y_val)
        step["validation_after"] = validation_metric(after, x_val, y_val)
    return step


def _prefixes(cand: _Candidate, options, x_val, y_val, ev=None):
    """(forest builder, parameters, (score, tie-break score), nodes) per ensemble
    prefix, scored on ``ev`` (default: validation): the tie-break is the mean
    probability of the true class."""
    forest = cand.forest
    if options.ensemble == "none":
        s = _score(forest, x_val, y_val) if x_val is not None else 0.0
        return [(lambda f=forest: f, {}, (s, s), forest.n_nodes)]
    ev = ev or oob.validation_only(forest.n_members, (x_val, y_val))
    order, scores, second = prune_ensemble.order_members(
        forest, ev.x, prune_ensemble.truth(forest, ev.y), options.ensemble, ev.mask
    )
    nodes = np.cumsum([forest.trees[i].n_nodes for i in order])
    sizes = [options.members] if options.members else range(1, len(order) + 1)
    out = []
    for k in sizes:
        k = min(k, len(order))
        keep = tuple(int(i) for i in order[:k])
        out.append(
            (
                lambda f=forest, keep=keep: f.with_trees([f.trees[i] for i in keep]),
                {"members": k, "order": list(keep), "judged_on": ev.source},
                (float(scores[k - 1]), float(second[k - 1])),
                int(nodes[k - 1]),
            )
        )
    return out


def _preferred(pool):
    """The pool, most accurate on validation first and, among equally accurate, the
    largest first: on a small validation split many sizes tie, and the goal is
    the largest most accurate model that fits, not the smallest."""
    return sorted(pool, key=lambda p: (-p[3][0], -p[4], p[0]))


def _fit_goal(forest, options, cands, x_val, y_val, fits, evaluate):
    pool = []  # (tree-level index, prefix builder, prefix params, scores, nodes)
    for ci, cand in enumerate(cands):
        ev = evaluate(cand.forest)
        for build, params, score, nodes in _prefixes(cand, options, x_val, y_val, ev):
            pool.append((ci, build, params, score, nodes))
    smallest = min(pool, key=lambda p: p[4])
    within = [p for p in pool if options.max_nodes is None or p[4] <= options.max_nodes]
    tried, failed_at = 0, None
    for ci, build, params, _, nodes in _preferred(within):
        if failed_at is not None and nodes >= failed_at:
            continue  # no larger model than one that did not fit is tried
        candidate = build()
        tried += 1
        if fits is None or fits(candidate):
            log.info("fit goal: %d candidates checked, %d nodes kept", tried, nodes)
            return ci, candidate, params
        failed_at = nodes
    parts = [f"at most {options.max_nodes} nodes"] if options.max_nodes else []
    budget = " and ".join(parts + (["the device budget"] if fits is not None else []))
    raise GoalUnreachableError(
        f"no pruned candidate meets {budget}: the smallest has {smallest[4]} nodes in "
        f"{smallest[1]().n_members} members ({len(pool)} candidates, {tried} checked); "
        "loosen the budget or prune harder (another method, fewer members)"
    )


def prune(
    forest: Forest,
    options: PruneOptions,
    train_data=None,
    val_data=None,
    tree_options: TreeOptions | None = None,
    fits: Callable[[Forest], bool] | None = None,
) -> PruneOutcome:
    """Prune ``forest`` as ``options`` say: the tree-level method on every member,
    then ensemble pruning. ``train_data``/``val_data`` are ``(x, y)`` (the
    training split only for pre-pruning's refits). ``fits(candidate)`` is the
    caller's budget check ("fit" goal). No side effects besides calling ``fits``.

    Raises:
        BadInputError: missing validation/training data the method needs, or
            MDL / ordered aggregation on a regressor.
        DataError: validation data that trees cannot take or of the wrong width.
        GoalUnreachableError: no candidate passes ``max_nodes``/``fits``.
    """
    if val_data is not None:
        x_val, y_val = check_xy(*val_data, forest.task)
        x_val = model_inputs(forest, x_val)
        if x_val.shape[1] != forest.n_features:
            raise DataError(
                f"the validation features have {x_val.shape[1]} columns but the model takes "
                f"{forest.n_features}; give the same features the model was fitted on"
            )
        val_data = (x_val, y_val)
    else:
        x_val = y_val = None
    if options.ensemble != "none":
        _need_validation(val_data, f"{options.ensemble} ensemble")
    checked = None
    if options.choose_on == "oob" and train_data is not None:
        checked = check_xy(*train_data, forest.task)

    def evaluate(f):
        return oob.choice_rows(f, options.choose_on, checked, val_data)

    cands, chosen = tree_level(
        forest, options, train_data, val_data, tree_options, evaluate(forest)
    )
    budgeted = options.max_nodes is not None or fits is not None
    if budgeted:
        chosen, final, ens_params = _fit_goal(forest, options, cands, x_val, y_val, fits, evaluate)
    tree_result = cands[chosen].forest
    steps = []
    if options.method != "none":
        params = {**cands[chosen].parameters, "candidates": len(cands)}
        if options.method == "ccp":
            params["rule"] = "fit" if budgeted else options.ccp_rule
        steps.append(_step(options.method, params, forest, tree_result, x_val, y_val))
    if options.ensemble != "none":
        if not budgeted:
            cand = cands[chosen]
            prefixes = _prefixes(cand, options, x_val, y_val, evaluate(cand.forest))
            best = (
                0  # a fixed member count gives one prefix
                if options.members
                else default_size(
                    [p[2][0] for p in prefixes],
                    cand.forest.n_members,
                    options.min_members_fraction,
                )
            )
            build, ens_params = prefixes[best][0], prefixes[best][1]
            final, order = build(), prefixes[-1][1]["order"]  # all members, or ``members``
        steps.append(_step(options.ensemble, ens_params, tree_result, final, x_val, y_val))
    elif not budgeted:
        final, order = tree_result, list(range(forest.n_members))
    if options.max_accuracy_drop < 1 and not budgeted and val_data is not None:
        votes = options.leaves == "votes"
        guarded, params = prune_guard.guard_forest(
            forest, tree_result, final, order, options.max_accuracy_drop, evaluate(forest), votes
        )
        steps.append(_step("accuracy_guard", params, final, guarded, x_val, y_val))
        final = guarded
    # the pruned model's members are no longer the record's, nor are its leaves scaled
    stale = (oob.BOOTSTRAP_KEY, prune_ensemble.LEAF_SCALE_KEY)
    meta = {k: v for k, v in final.meta.items() if k not in stale}
    final = replace(final, meta=meta)
    if options.leaves != "fractions" and final.task == CLASSIFICATION:
        how = {"votes": prune_ensemble.vote_leaves, "quantized": prune_ensemble.quantize_leaves}
        done = how[options.leaves](final)
        scale = {k: v for k, v in done.meta.items() if k == prune_ensemble.LEAF_SCALE_KEY}
        steps.append(_step(options.leaves, scale, final, done, x_val, y_val))
        final = done  # fewer bytes than the candidate ``fits`` passed: still fits
    final = replace(final, meta={**final.meta, "pruning": [dict(s) for s in steps]})
    return PruneOutcome(final, tuple(steps))
