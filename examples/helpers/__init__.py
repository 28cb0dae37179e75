"""Helpers shared by the example workflows."""

from .greetings import greet

__all__ = ["greet"]
