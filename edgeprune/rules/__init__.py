"""Rules: predicates whose docstring is the rule's text, each returning its evidence."""
