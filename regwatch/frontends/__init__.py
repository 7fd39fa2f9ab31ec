"""Adapters for people and machines: translation only."""
