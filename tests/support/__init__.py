"""Test helpers shared across the suite (real engines, no mocks)."""
