"""Rules: predicates whose docstring is the rule's text, each returning its evidence.

Budget (:mod:`.budget`), quality (:mod:`.quality`) and validation
(:mod:`.validation`) rules, and the device check's preconditions, all return
one type, :class:`~edgeprune.rules.result.RuleResult`.
"""

from edgeprune.rules.result import RuleResult, rule_text

__all__ = ["RuleResult", "rule_text"]
