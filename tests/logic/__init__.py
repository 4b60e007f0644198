"""Tests of the logic tier (logic_service) with real parts and no graph tier process."""
