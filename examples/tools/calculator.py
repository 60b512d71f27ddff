"""Calculator tools for examples/tool_use.yaml: plain Python functions, described from their signatures."""

import math


def add(a: float, b: float) -> float:
    """Add two numbers.

    Args:
        a: the first number
        b: the second number
    """
    return a + b


def multiply(a: float, b: float) -> float:
    """Multiply two numbers.

    Args:
        a: the first number
        b: the second number
    """
    return a * b


def square_root(x: float) -> float:
    """The square root of a number that is not negative.

    Args:
        x: the number
    """
    if x < 0:
        raise ValueError("x must not be negative")
    return math.sqrt(x)
