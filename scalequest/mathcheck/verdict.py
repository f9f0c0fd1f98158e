"""Read the final yes/no verdict of a judge LLM that was asked to reason first and end with `Verdict: Yes|No`.

The original ScaleQuest scripts kept any judge output containing "yes" anywhere; this reads only the last explicit
verdict, so "Yes, the problem is clear ... but the conditions contradict" is not a yes.
Test: `pytest tests/mathcheck/test_verdict.py`.
"""

import itertools
import re

# Markdown emphasis, code ticks and heading marks carry no meaning for the verdict.
_DECORATION_RE = re.compile(r"[*_`#>]+")
_KEYWORD = r"\b(?:verdict|answer|judg(?:e)?ment|decision|conclusion)"
_ANSWER = r"(?P<answer>yes|no)\b(?![ \t]*(?:/|or\b)[ \t]*(?:yes|no)\b)"  # not "Yes/No", "yes or no"
_MARKER_RES = (
    # `Verdict: Yes`, `Final verdict - no`, `Answer: yes.`, `Judgment = No`, `Verdict:\nYes`
    re.compile(
        _KEYWORD + r"[ \t]*[:=\-–—][ \t]*\n?[ \t]*" + _ANSWER,
        re.IGNORECASE,
    ),
    # `My final verdict is Yes.` — only when the yes/no ends the sentence ("the answer is no longer ..." is not)
    re.compile(
        _KEYWORD + r"[ \t]+is[ \t]+" + _ANSWER + r"(?=[ \t]*[.!]?[ \t]*$)",
        re.IGNORECASE | re.MULTILINE,
    ),
    # `\boxed{Yes}`, `\boxed{\text{No}}`
    re.compile(r"\\boxed\{[ \t]*(?:\\text(?:bf)?\{)?[ \t]*" + _ANSWER + r"[ \t]*\}?[ \t]*\}", re.IGNORECASE),
)
# Between two markers that only list the options ("Verdict: Yes` or `Verdict: No"): neither is a verdict.
_OPTION_GAP_RE = re.compile(r"""^[\s'"]*(?:or|/|,)[\s'"]*$""", re.IGNORECASE)
_BARE_LINE_RE = re.compile(r"""^[\s'"(\[]*(?P<answer>yes|no)[\s'".!)\]]*$""", re.IGNORECASE)


def parse_verdict(text: str) -> bool | None:
    """True/False for the judge's final `Verdict: Yes/No` (or equivalent marker); None when there is none.

    Takes the last explicit marker, ignoring markdown emphasis. Without a marker, accepts a last non-empty line
    that is only "yes" or "no". A "yes" elsewhere in the reasoning never counts. Non-str input -> None.
    """
    if not isinstance(text, str):
        return None
    plain = _DECORATION_RE.sub("", text)
    markers = _verdict_markers(plain)
    if markers:
        return markers[-1][1]
    return _bare_last_line(plain)


def _verdict_markers(plain: str) -> list[tuple[int, bool, int]]:
    """(start, verdict, end) of every explicit verdict marker, in text order, minus option listings."""
    found = sorted(
        {
            (match.start(), match.group("answer").lower() == "yes", match.end())
            for regex in _MARKER_RES
            for match in regex.finditer(plain)
        }
    )
    listed = set()
    for left, right in itertools.pairwise(found):
        if left[1] != right[1] and _OPTION_GAP_RE.match(plain[left[2] : right[0]]):
            listed.update((left, right))
    return [marker for marker in found if marker not in listed]


def _bare_last_line(plain: str) -> bool | None:
    """True/False if the last non-empty line is just yes/no (with punctuation), else None."""
    lines = [line for line in plain.splitlines() if line.strip()]
    if not lines:
        return None
    match = _BARE_LINE_RE.match(lines[-1])
    return None if match is None else match.group("answer").lower() == "yes"
