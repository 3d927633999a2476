"""Helpers shared by the scenarios' testinfra tests."""
