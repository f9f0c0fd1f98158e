import numpy as np
import pytest

from scalequest.config import LanguageConfig
from scalequest.stages.language import FilterLanguage, prose, prose_words


@pytest.fixture(scope="module")
def stage():
    return FilterLanguage(LanguageConfig())


@pytest.mark.parametrize("question", [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?",
    "Find the value of $x$ such that $\\sqrt{x+7} = 9$.",
    "A right triangle has legs of 3 cm and 4 cm. The angle opposite the 3 cm leg is θ; find sin θ to 2 decimals.",
    "If the temperature rises from -5°C to 12°C, by how many degrees did it rise?",
    "Let $f(x) = x^2 + 3x$. Evaluate $\\sum_{k=1}^{10} f(k)$.",
    "$\\frac{2}{3} + \\frac{5}{6} = ?$",
    "What is the area of a circle of radius 2? Express your answer in terms of π.",
    "How many integers n satisfy 3 ≤ n ≤ 17?",
])
def test_language_keeps_english_math_questions(stage, question):
    out = stage({"question": [question]})
    assert out["reject_reason"] == [None], out


@pytest.mark.parametrize("question, reason_part", [
    ("小明有5个苹果，他又买了3个，现在他有多少个苹果？", "non-English character"),
    ("Маша купила 3 яблока и 5 груш. Сколько всего фруктов она купила?", "non-English character"),
    ("Combien de pommes Marie a-t-elle si elle en achète trois fois plus que Paul, qui en a quatre ?",
     "language 'fr'"),
    ("Wie viele Äpfel hat Anna, wenn sie doppelt so viele hat wie Tom, der sieben Äpfel hat?", "language 'de'"),
    ("Compute 5 + 3，then multiply by 2.", "non-English character"),
])
def test_language_rejects_non_english_question(stage, question, reason_part):
    out = stage({"question": [question]})
    assert out["reject_stage"] == ["language"]
    assert reason_part in out["reject_reason"][0]


def test_language_accepts_numpy_batch_and_keeps_earlier_rejects(stage):
    batch = {
        "question": np.array(["What is 2 + 2?", "¿Cuántos lados tiene un hexágono regular?", ""], dtype=object),
        "reject_stage": np.array([None, None, "generate"], dtype=object),
        "reject_reason": np.array([None, None, "empty question"], dtype=object),
        "id": np.array([1, 2, 3]),
    }
    out = stage(batch)
    assert out["reject_reason"][0] is None
    assert out["reject_stage"][1] == "language"
    assert out["reject_reason"][2] == "empty question"  # untouched: rejected upstream
    assert out["language"][2] is None
    assert out["id"] == [1, 2, 3]


def test_language_disabled_keeps_everything():
    out = FilterLanguage(LanguageConfig(enabled=False))({"question": ["这是中文"]})
    assert out["reject_reason"] == [None]


def test_prose_drops_math_spans_environments_asymptote_and_commands():
    text = ("Let $x=\\frac{1}{2}$ and \\(y\\) be given. \\begin{align*}a &= b\\end{align*} "
            "[asy] draw((0,0)--(1,1)); [/asy] Compute \\sqrt{2} now.")
    assert prose(text) == "Let and be given. Compute {2} now."
    assert prose_words("$3x^2 + 5 = 17$") == 0 < prose_words("How many apples are left?") == 5


@pytest.mark.parametrize("question", [
    "Compute: $9 \\cdot \\frac{1}{13} \\cdot 26.$",  # fastText reads the whole string as German
    "If $x - 2x + 3x = 100$, what is the value of $x$?",  # … and this one as Italian
])
def test_language_judges_the_prose_not_the_latex(stage, question):
    assert stage({"question": [question]})["reject_reason"] == [None]


@pytest.mark.parametrize(("name", "most"), [("gsm8k", 0.002), ("math", 0.005)])
def test_language_keeps_nearly_all_real_english_train_questions(stage, shared_data, name, most):
    import json

    lines = (shared_data / name / "train.jsonl").read_text().splitlines()[:2000]
    questions = [(r.get("question") or r.get("problem")) for r in map(json.loads, lines)]
    rejected = [q for q in questions if stage.verdict(q)[2]]
    assert len(rejected) <= most * len(questions), rejected[:5]
