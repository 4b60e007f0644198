"""The base of every settings section: an unknown key is an error, not silently ignored."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """A typo in logic.yaml (or a rollout spec) must fail loudly instead of being ignored."""

    model_config = ConfigDict(extra="forbid")
