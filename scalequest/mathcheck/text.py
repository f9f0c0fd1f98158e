"""Question text checks: normalization and hashing for dedup, the paper's non-English-script filter, and
`MATH_SPAN`, the math in a question (the language and question-type filters read the text around it).

Test: `pytest tests/mathcheck/test_text.py`.
"""

import hashlib
import re
import unicodedata

# Asymptote code and LaTeX environments first, so a '$' inside them never opens an inline span
MATH_SPAN = re.compile(
    r"\[asy\].*?\[/asy\]|\\begin\{([A-Za-z]+\*?)\}.*?\\end\{\1\}"
    r"|\$\$.*?\$\$|\$.*?\$|\\\(.*?\\\)|\\\[.*?\\\]", re.DOTALL)

# A letter is English-compatible if its name starts with one of these (é, π, 𝑥, ℝ, ℓ, ⁿ, ʼ ...).
_LETTER_PREFIXES = (
    "LATIN ",
    "GREEK ",
    "MATHEMATICAL ",
    "DOUBLE-STRUCK ",
    "SCRIPT ",
    "BLACK-LETTER ",
    "SUPERSCRIPT ",
    "SUBSCRIPT ",
    "MODIFIER LETTER ",
    "MICRO SIGN",
    "FEMININE ORDINAL",
    "MASCULINE ORDINAL",
)
_LETTERLIKE_BLOCK = range(0x2100, 0x2150)  # ℵ ℏ ℘ ... are letters by category but math symbols in use
# Names that mark East Asian text even for punctuation, digits and symbols (，。：１「」 ...).
_EAST_ASIAN_WORDS = (
    "FULLWIDTH",
    "HALFWIDTH",
    "IDEOGRAPHIC",
    "CJK",
    "HIRAGANA",
    "KATAKANA",
    "HANGUL",
    "BOPOMOFO",
)
_EAST_ASIAN_BLOCKS = (range(0x3000, 0x3040), range(0xFE30, 0xFE50), range(0xFF00, 0xFFF0))
# Punctuation, digits and signs that belong to another script (، ٣ । ...).
_OTHER_SCRIPT_PREFIXES = (
    "ARABIC",
    "HEBREW",
    "CYRILLIC",
    "ARMENIAN",
    "GEORGIAN",
    "DEVANAGARI",
    "BENGALI",
    "TAMIL",
    "THAI",
    "ETHIOPIC",
    "SYRIAC",
)
_ALLOWED_CONTROLS = "\n\t\r"


def normalize_question(text: str) -> str:
    """`text` after NFKC, casefold, every whitespace run collapsed to one space, and strip."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def question_hash(text: str) -> str:
    """First 16 hex chars of the sha1 of `normalize_question(text)`: equal for trivially different copies."""
    return hashlib.sha1(normalize_question(text).encode("utf-8")).hexdigest()[:16]


def foreign_script(text: str) -> str | None:
    """None if `text` looks like English math text, else why not, naming the first offending character.

    Allowed: ASCII, numbers/punctuation/symbols/spaces (°, π, ≤, ×, €, —, “”), Latin letters with diacritics,
    Greek and mathematical letters. Rejected: letters of other scripts, East Asian punctuation and fullwidth
    forms, control characters other than newline, tab and carriage return.
    Example: `foreign_script("求 x")` -> `"non-English character '求' (CJK UNIFIED IDEOGRAPH-6C42)"`.
    """
    for ch in text:
        reason = _char_problem(ch)
        if reason is not None:
            return reason
    return None


def _char_problem(ch: str) -> str | None:
    """Why a single character is not acceptable, or None."""
    category = unicodedata.category(ch)
    if category == "Cc":
        return None if ch in _ALLOWED_CONTROLS else f"control character U+{ord(ch):04X}"
    if ch.isascii():
        return None
    name = unicodedata.name(ch, "")
    if category in ("Cs", "Co", "Cn") or not name:
        return f"unassigned or private-use character U+{ord(ch):04X}"
    if _is_foreign(ch, category, name):
        return f"non-English character '{ch}' ({name})"
    return None


def _is_foreign(ch: str, category: str, name: str) -> bool:
    """True if a named non-ASCII character belongs to a script other than Latin/Greek/math."""
    code = ord(ch)
    if any(word in name for word in _EAST_ASIAN_WORDS) or any(code in block for block in _EAST_ASIAN_BLOCKS):
        return True
    if name.startswith(_OTHER_SCRIPT_PREFIXES):
        return True
    if category.startswith("L"):
        return not (name.startswith(_LETTER_PREFIXES) or code in _LETTERLIKE_BLOCK)
    if category.startswith("M"):  # combining accents are fine; vowel signs of other scripts are not
        return not name.startswith("COMBINING ")
    if category == "Nd":  # other scripts' digits (٣, ৩); 𝟑 is MATHEMATICAL BOLD DIGIT THREE
        return not name.startswith("MATHEMATICAL ")
    return False
