"""Tests for scalequest.mathcheck.text: question normalization/hash and the non-English-script filter."""

import pytest

from scalequest.mathcheck import foreign_script, normalize_question, question_hash


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  What is 2+2?  ", "what is 2+2?"),
        ("What\tis\n\n2 +  2?", "what is 2 + 2?"),
        ("ＷＨＡＴ is ２+２?", "what is 2+2?"),  # NFKC folds fullwidth forms
        ("Stra\u00dfe", "strasse"),  # casefold, not lower
        ("x\u00a0=\u20033", "x = 3"),  # no-break and em spaces are whitespace
        ("ﬁnd x", "find x"),  # ligature
        ("", ""),
    ],
)
def test_normalize_question_folds_case_width_and_whitespace(text, expected):
    assert normalize_question(text) == expected


def test_question_hash_is_equal_for_trivially_different_copies():
    first = question_hash("What is 2 + 2?")
    assert first == question_hash("  what   IS 2 + 2?\n")
    assert first == question_hash("ＷＨＡＴ is 2 + 2?")
    assert first != question_hash("What is 2 + 3?")
    assert len(first) == 16 and int(first, 16) >= 0


@pytest.mark.parametrize(
    "text",
    [
        "What is 2+2?",
        "Find $x$ such that $\\frac{1}{2}x = 3$.\n\tShow your work.\r\n",
        "The temperature is 25°C; compute π·r² for r = 3.",
        "Prove that ∑ aᵢ ≤ √n × ∞ ÷ 2 and x ≠ y, x ∈ ℝ, f: ℕ → ℤ.",
        "José and Zoë bought a crème brûlée for €5 — how much is left?",
        "“Quoted” text with ‘curly’ quotes… and an ellipsis.",
        "Let α, β, γ be angles and Ω the set; Δx → 0.",
        "Let ℵ₀ be countable, ℓ a length, ℏ Planck's constant, 𝑥 a variable, 𝔽 a field.",
        "Sides are 3 cm × 4 cm; ½ of ¾ is ⅜; x⁻¹ ≥ 0.",
        "A vector v\u20d7 and a soft\u00adhyphen.",
        "Bob\u2019s number is 12\u200b.",
        "",
    ],
)
def test_foreign_script_accepts_english_math_text(text):
    assert foreign_script(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("你好 x", "non-English character '你' (CJK UNIFIED IDEOGRAPH-4F60)"),
        ("Find x，then y", "non-English character '，' (FULLWIDTH COMMA)"),
        ("Find x。", "non-English character '。' (IDEOGRAPHIC FULL STOP)"),
        ("Ratio x：y", "non-English character '：' (FULLWIDTH COLON)"),
        ("Solve 「x」", "non-English character '「' (LEFT CORNER BRACKET)"),
        ("Value １２", "non-English character '１' (FULLWIDTH DIGIT ONE)"),
        ("Найдите x", "non-English character 'Н' (CYRILLIC CAPITAL LETTER EN)"),
        ("Find а = 2", "non-English character 'а' (CYRILLIC SMALL LETTER A)"),  # homoglyph of Latin a
        ("احسب x", "non-English character 'ا' (ARABIC LETTER ALEF)"),
        ("Value ٣", "non-English character '٣' (ARABIC-INDIC DIGIT THREE)"),
        ("x = 3 ، y", "non-English character '،' (ARABIC COMMA)"),
        ("מצא x", "non-English character 'מ' (HEBREW LETTER MEM)"),
        ("x का मान", "non-English character 'क' (DEVANAGARI LETTER KA)"),
        ("값을 구하시오", "non-English character '값' (HANGUL SYLLABLE GABS)"),
        ("ひらがな", "non-English character 'ひ' (HIRAGANA LETTER HI)"),
        ("カタカナ", "non-English character 'カ' (KATAKANA LETTER KA)"),
        ("จงหา x", "non-English character 'จ' (THAI CHARACTER CHO CHAN)"),
        ("x\x0crac{1}{2}", "control character U+000C"),  # "\frac" written unescaped in JSON
        ("null\x00byte", "control character U+0000"),
        ("bell\x07", "control character U+0007"),
        ("c1 control \x85", "control character U+0085"),
        ("private \ue000 use", "unassigned or private-use character U+E000"),
    ],
)
def test_foreign_script_rejects_other_scripts_and_controls(text, expected):
    assert foreign_script(text) == expected


def test_foreign_script_names_first_offending_character():
    assert foreign_script("Let x be 5。求 y") == "non-English character '。' (IDEOGRAPHIC FULL STOP)"
