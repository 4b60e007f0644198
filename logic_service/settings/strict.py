"""The base of every settings section (an unknown key is an error), and blank-as-unset."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """A typo in logic.yaml (or a rollout spec) must fail loudly instead of being ignored."""

    model_config = ConfigDict(extra="forbid")


def blank_as_unset(value: Any) -> Any:
    """An empty string for an optional path: unset, not the working directory.

    compose's ``${VAR:-}`` and an empty environment variable both give "".
    """
    return None if isinstance(value, str) and not value.strip() else value
