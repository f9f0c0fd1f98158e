"""`scalequest audit` on a JSONL file of hand-made questions, some copied or lightly edited from GSM8K/MATH test:
it flags those (naming the benchmark), the duplicates and the question types, and passes the clean ones."""

import json

from scalequest.cli import main

CLEAN = [
    "A baker makes 37 loaves of rye bread on Monday and twice as many on Tuesday. If each loaf sells for $4, how "
    "much money does the baker earn over the two days?",
    "Let $f(x) = 3x^2 - 7x + 11$. What is the smallest value of $f(x)$ over all real numbers $x$?",
    "How many positive divisors does 7,560 have?",
    "Priya cycles 15 kilometers per hour for 40 minutes and then walks 5 kilometers per hour for 30 minutes. How "
    "far does she travel in total?",
]


def test_audit_flags_copies_duplicates_and_types_and_passes_clean_rows(tmp_path, shared_data, capsys):
    with open(shared_data / "gsm8k/test.jsonl") as f:
        gsm = json.loads(f.readline())["question"]
    with open(shared_data / "math/test.jsonl") as f:
        math = next(p for p in (json.loads(line)["problem"] for line in f) if len(p.split()) > 30)
    rows = [{"problem": q, "solution": "so \\boxed{1}"} for q in CLEAN]
    rows += [{"problem": gsm}, {"problem": gsm.replace("16", "19") + " Round to the nearest dollar."},
             {"problem": math}, {"problem": CLEAN[0]},  # an exact duplicate of row 0
             {"problem": CLEAN[3].replace("40 minutes", "45 minutes")},  # a near duplicate of row 3
             {"problem": "Which is larger? (A) 3 (B) 4 (C) 5 (D) 6", "solution": "no box"}]
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "flagged.jsonl"
    assert main(["audit", str(data), "--out", str(out)]) == 0
    table = capsys.readouterr().out
    flagged = {r["row"]: r["reasons"] for r in map(json.loads, out.read_text().splitlines())}
    assert set(flagged) == {4, 5, 6, 7, 8, 9}, flagged  # the clean rows 0-3 pass
    assert flagged[4] == ["contaminated: gsm8k_test item 0 (exact text)"]
    assert flagged[5][0].startswith("near-duplicate of id 4 (")  # the edit of row 4 is both
    assert flagged[5][1].startswith("contaminated: gsm8k_test item 0 (")
    assert flagged[6][0].startswith("contaminated: math_test item ")
    assert flagged[7] == ["duplicate of an earlier question"]
    assert flagged[8][0].startswith("near-duplicate of id 3 (")
    assert flagged[9] == ["multiple choice (4 options)"]
    assert "audit of" in table and "10 rows (question field 'problem', response field 'solution')" in table
    assert "contaminated: gsm8k_test (13-gram or exact)" in table and "rows flagged by any check: 6 of 10" in table
    assert "responses with a boxed answer" in table and "80.00%" in table  # 4 of 5 responses


def test_audit_names_the_missing_field_and_path(tmp_path, capsys):
    data = tmp_path / "x.jsonl"
    data.write_text('{"text": "What is 1 + 1?"}\n')
    assert main(["audit", str(data)]) == 2
    assert "has no question field" in capsys.readouterr().err
    assert main(["audit", str(tmp_path / "nope.jsonl")]) == 2
    assert main(["audit", str(data), "--field", "text"]) == 0
