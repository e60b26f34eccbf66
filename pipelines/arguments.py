"""Argument types shared by the command lines (each CLI stays independent of the others)."""

from __future__ import annotations

import argparse
import math


def at_least(least: float, kind=int, above: bool = False):
    """argparse type: a number >= ``least`` (> with ``above``); anything else is refused by argparse
    (exit 2, before any work) with "VALUE is not allowed: give an integer >= LEAST"."""
    what = "an integer" if kind is int else "a number"
    sign = ">" if above else ">="

    def parse(value: str):
        number = kind(value)
        if not math.isfinite(number) or not (number > least if above else number >= least):
            raise argparse.ArgumentTypeError(f"{value} is not allowed: give {what} {sign} {least:g}")
        return number

    parse.__name__ = kind.__name__  # argparse says "invalid int value" for a non-number
    return parse
