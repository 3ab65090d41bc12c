"""Words shared by every output: a count with its noun ("1 step", "3 steps")."""

from __future__ import annotations


def counted(number: int, noun: str) -> str:
    """``number`` and ``noun``, in the plural unless the number is one."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
