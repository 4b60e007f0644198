"""Benchmarks of the tiers against their own bounds (``python -m bench <tier>``).

Not tests: they measure, print a Markdown table for ``docs/benchmarks.md`` and
check the project's performance goals, on whatever machine runs them.
"""
