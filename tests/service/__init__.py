"""Tests of the application layer, in process, against the real registries."""
