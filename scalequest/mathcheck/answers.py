"""Final-answer extraction, equivalence and majority voting for math responses.

Pure functions, no models. Equivalence uses math-verify without its signal-based timeouts, because stages may run
off the main thread (Ray); instead, answers whose numeric size would make sympy hang are compared as strings.
Test: `pytest tests/mathcheck/test_answers.py`.
"""

import functools
import logging
import math
import re

# math-verify warns that timeouts are off; they are off on purpose (see module docstring).
for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).setLevel(logging.ERROR)

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_GSM8K_RE = re.compile(r"####\s*([^\n]*)")
_MAX_ANSWER_CHARS = 1000  # longer "answers" are not answers; do not spend sympy time on them
_MAX_LOG10 = 1e6  # ~a million digits: verify takes ~0.3 s; 10^(10^10) never finishes
_NORM_DROP_RE = re.compile(r"\s+|\$|\\left|\\right|\\[,!;: ]")


def extract_boxed(text: str) -> str | None:
    r"""Return the content of the last `\boxed{...}` / `\fbox{...}` / `\boxed 5` in `text`.

    Nested braces are balanced (`\boxed{\frac{1}{2}}` -> `\frac{1}{2}`). Returns None for non-str input, when
    there is no box, when the last box never closes (truncated output), or when its content is blank.
    """
    if not isinstance(text, str):
        return None
    matches = list(_BOX_RE.finditer(text))
    if not matches:
        return None
    rest = text[matches[-1].end() :]
    stripped = rest.lstrip()
    if stripped.startswith("{"):
        content = _braced(stripped)
    elif rest[:1].isspace():  # `\boxed 5`: the next token is the answer
        token = re.match(r"[^\s$]*", stripped).group(0)
        content = token.rstrip(".,;")
    else:
        content = None
    if content is None or not content.strip():
        return None
    return content.strip()


def _braced(text: str) -> str | None:
    """Content of the brace group that opens at text[0], or None if it never closes."""
    depth = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":  # `\{`, `\}` and `\\` are escapes, not grouping
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[1:i]
        i += 1
    return None


def answers_match(a: str, b: str) -> bool:
    r"""True if answers `a` and `b` (box contents, e.g. `\frac12` and `0.5`) are mathematically equivalent.

    Uses math-verify; falls back to normalized string equality when either side does not parse. Symmetric in
    its arguments. Never raises: returns False for non-str input or on any error.
    """
    try:
        if not isinstance(a, str) or not isinstance(b, str):
            return False
        na, nb = _normalize(a), _normalize(b)
        if not na or not nb:
            return False
        if na == nb:
            return True
        a, b = sorted((a, b))  # math-verify treats its first argument as gold: fix the order for symmetry
        pa, pb = _parse(a), _parse(b)
        if not pa or not pb:
            return False
        from math_verify import verify

        return bool(verify(list(pa), list(pb), timeout_seconds=None))
    except Exception:  # noqa: BLE001 — a malformed answer is a non-match, never a crashed batch
        return False


def _normalize(answer: str) -> str:
    """Answer text reduced for string comparison: no spaces, `$`, `\\left`/`\\right`, thin spaces, final dot."""
    text = _NORM_DROP_RE.sub("", answer).replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return text.rstrip(".").casefold()


@functools.lru_cache(maxsize=8192)
def _parse(answer: str) -> tuple:
    """math-verify parse of one answer, or () when it does not parse or would be too costly to compare."""
    from math_verify import parse

    answer = answer.strip().strip("$").strip().rstrip(".")
    if not answer or len(answer) > _MAX_ANSWER_CHARS:
        return ()
    parsed = parse("\\boxed{" + answer + "}", parsing_timeout=None)
    if any(_log10_size(p) > _MAX_LOG10 for p in parsed if not isinstance(p, str)):
        return ()
    return tuple(parsed)


def _log10_size(node) -> float:
    """Rough upper bound on log10 |value| of a sympy tree (symbols count as 1), to spot numbers that hang sympy."""
    import sympy

    if not isinstance(node, sympy.Basic):
        return 0.0
    if node.is_Rational:
        return max(int(node.p).bit_length(), int(node.q).bit_length()) * math.log10(2)
    sizes = [_log10_size(arg) for arg in node.args]
    if isinstance(node, sympy.Pow):
        base, exponent = sizes
        return math.inf if exponent > 15 else max(base, 1.0) * 10**exponent
    if isinstance(node, sympy.factorial):
        return math.inf if sizes[0] > 15 else 10 ** sizes[0] * max(sizes[0], 1.0)
    return sum(sizes) + 1.0


def vote_answers(answers: list[str | None]) -> list[float]:
    """Per response, the fraction of ALL responses whose answer is equivalent to its own (None scores 0.0).

    Answers are clustered against one representative per cluster, so this costs O(n * clusters) comparisons.
    `[]` -> `[]`.
    """
    total = len(answers)
    representatives: list[str] = []
    members: list[list[int]] = []
    for i, answer in enumerate(answers):
        if not isinstance(answer, str) or not answer.strip():
            continue
        for rep, group in zip(representatives, members):
            if answers_match(rep, answer):
                group.append(i)
                break
        else:
            representatives.append(answer)
            members.append([i])
    scores = [0.0] * total
    for group in members:
        for i in group:
            scores[i] = len(group) / total
    return scores


def gsm8k_gold(answer_field: str) -> str | None:
    """The final answer of a GSM8K solution (the text after its last `####`, commas removed), or None."""
    if not isinstance(answer_field, str):
        return None
    found = _GSM8K_RE.findall(answer_field)
    if not found:
        return None
    gold = found[-1].replace(",", "").strip()
    return gold or None
