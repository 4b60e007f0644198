"""The fault tests' stack (one graph tier, logic tiers per test): ``support/fault_stack.py``."""

from support.fault_stack import logic, stack  # noqa: F401 - the fixtures, shared with tests/fuzz
