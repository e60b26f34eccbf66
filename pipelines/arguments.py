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


def memory_budget(value: str) -> str:
    """argparse type of --max-memory: a positive size such as 2GB, 512MB or 1.5GiB (kept as typed)."""
    from srkeras.inference.planning import parse_memory_budget  # no TensorFlow import

    try:
        parse_memory_budget(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value


def add_max_memory(p: argparse.ArgumentParser, what: str = "the model's activations") -> None:
    """``--max-memory`` (default 2GB) as ``pipelines.upscale`` has it: the budget of the tiles and of
    the impulse probe that measures a model's receptive field when the layer graph cannot."""
    p.add_argument("--max-memory", default="2GB", type=memory_budget,
                   help=f"memory budget for {what} (e.g. 2GB, 512MB); also bounds the receptive-field probe")
