"""Pipeline stages: each a function from artifacts to a frozen result."""
