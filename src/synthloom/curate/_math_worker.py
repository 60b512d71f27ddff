"""Runs inside the sandbox (as `main.py`), never imported: sympy on model text, one pair at a time.

Reads `pairs.json` ({"seconds": s, "pairs": [[answer, reference], ...]})
and prints, per pair and in order, one JSON line: true / false (equivalent
or not) or a string (why they could not be compared). Each pair has
`seconds` of wall time (an alarm
interrupts sympy where it loops in Python); a pair that hangs in C is cut
by the sandbox's limits, and the caller resumes with the pairs not printed.
"""

import json
import re
import signal

from sympy import N, simplify
from sympy.parsing.sympy_parser import (
    convert_xor,
    implicit_multiplication_application,
    parse_expr,
    standard_transformations,
)

TRANSFORMS = standard_transformations + (implicit_multiplication_application, convert_xor)
DROP = [r"\left", r"\right", r"\!", r"\,", r"\;", r"\:", r"\displaystyle", "$", r"\%", "%", r"^\circ", r"^{\circ}", r"\circ"]
WORDS = {r"\cdot": "*", r"\times": "*", r"\div": "/", r"\pi": "pi", r"\infty": "oo", r"\le": "<=", r"\ge": ">="}


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout()


def _group(text, start):
    """(content, end) of the {...} group opening at text[start]."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
    raise ValueError("unbalanced braces")


def _commands(text):
    """\\frac{a}{b} -> ((a)/(b)), \\sqrt{a} -> sqrt(a), \\sqrt[n]{a} -> (a)**(1/(n)), \\text{..} dropped."""
    for name in (r"\dfrac", r"\tfrac", r"\frac"):
        while name in text:
            i = text.index(name)
            a, j = _group(text, i + len(name))
            b, k = _group(text, j)
            text = text[:i] + f"(({a})/({b}))" + text[k:]
    while r"\sqrt" in text:
        i = text.index(r"\sqrt")
        j = i + len(r"\sqrt")
        if text[j : j + 1] == "[":
            end = text.index("]", j)
            root, (body, k) = text[j + 1 : end], _group(text, end + 1)
            text = text[:i] + f"(({body})**(1/({root})))" + text[k:]
        else:
            body, k = _group(text, j)
            text = text[:i] + f"sqrt({body})" + text[k:]
    for name in (r"\text", r"\mathrm", r"\textbf", r"\mbox"):
        while name + "{" in text:
            i = text.index(name + "{")
            body, k = _group(text, i + len(name))
            text = text[:i] + (body if name != r"\text" else "") + text[k:]
    return text


def normalise(answer):
    text = str(answer).strip().rstrip(".")
    for word in DROP:
        text = text.replace(word, "")
    text = _commands(text)
    for word, new in WORDS.items():
        text = text.replace(word, new)
    if "=" in text and "<=" not in text and ">=" not in text:
        text = text.rsplit("=", 1)[1]
    text = text.replace("{", "(").replace("}", ")").replace("^", "**").strip()
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", text):
        text = text.replace(",", "")
    return text


def split_top(text):
    """Top-level comma-separated parts of a tuple or set: "(1, 2)" -> ["1", "2"]."""
    inner = text[1:-1] if text[:1] in "([" and text[-1:] in ")]" else text
    parts, depth, start = [], 0, 0
    for i, c in enumerate(inner):
        depth += c in "([{"
        depth -= c in ")]}"
        if c == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    return [p.strip() for p in parts]


def equal_one(a, b):
    if a == b:
        return True
    x = parse_expr(a, transformations=TRANSFORMS, evaluate=True)
    y = parse_expr(b, transformations=TRANSFORMS, evaluate=True)
    if x == y:
        return True
    if simplify(x - y) == 0:
        return True
    try:
        dx, dy = complex(N(x)), complex(N(y))
    except (TypeError, ValueError):
        return False
    return abs(dx - dy) <= 1e-9 * max(1.0, abs(dy))


def equal(a, b):
    a, b = normalise(a), normalise(b)
    pa, pb = split_top(a), split_top(b)
    if len(pa) > 1 or len(pb) > 1:
        if len(pa) != len(pb):
            return False
        left = list(pb)
        for part in pa:
            match = next((q for q in left if equal_one(part, q)), None)
            if match is None:
                return False
            left.remove(match)
        return True
    return equal_one(a, b)


signal.signal(signal.SIGALRM, _alarm)
JOB = json.load(open("pairs.json", encoding="utf-8"))
SECONDS = float(JOB["seconds"])
for answer, reference in JOB["pairs"]:
    signal.setitimer(signal.ITIMER_REAL, SECONDS)
    try:
        verdict = equal(answer, reference)
    except Timeout:
        verdict = f"sympy took more than {SECONDS:g} s"
    except Exception as exc:  # a model's text that sympy cannot read: say so, go on
        verdict = f"cannot compare ({type(exc).__name__}: {str(exc)[:80]})"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    print(json.dumps(verdict), flush=True)
