"""Column names and the Arrow schema of the output: the pipeline's contract.

Stage boundaries (each stage adds columns; none removes any):
  AssignGenerators   id → generator, seed
  GenerateQuestions  → question, question_tokens
  FilterLanguage     → language, language_score
  FilterQuestionType (rejects only)
  DropContaminated   (rejects only)
  DropDuplicates     → question_hash
  DropNearDuplicates (rejects only)
  JudgeSolvability   → solvable, solvability_judgement, judge_tokens
  ScoreDifficulty    → difficulty
  GenerateResponses  → responses, response_answers, response_tokens
  ScoreResponses     → response_rewards, response_agreement
  SelectBest         → response, final_answer, reward, agreement
  FinalizeRows       → status, provenance columns; cast to OUTPUT_SCHEMA
Every stage may set reject_stage / reject_reason (None = the row is still kept).
"""

from __future__ import annotations

REJECT_STAGE = "reject_stage"
REJECT_REASON = "reject_reason"
KEPT, REJECTED = "kept", "rejected"

# Generated-token counts per row, by the engine call that made them (the report and progress sum them).
TOKEN_COLUMNS = ("question_tokens", "judge_tokens", "response_tokens")

# Stage names as they appear in reject_stage and in the run report's funnel, in pipeline order.
FUNNEL_STAGES = ("generate", "language", "question_type", "decontam", "dedup", "near_dup", "solvability",
                 "difficulty", "responses", "select")


def output_schema():
    """Arrow schema of every output row (kept and rejected share it; rejected rows leave later columns null)."""
    import pyarrow as pa

    return pa.schema([
        ("id", pa.int64()),
        ("status", pa.string()),
        ("generator", pa.string()),
        ("question", pa.string()),
        ("response", pa.string()),
        ("final_answer", pa.string()),
        ("language", pa.string()),
        ("language_score", pa.float64()),
        ("solvable", pa.bool_()),
        ("solvability_judgement", pa.string()),
        ("difficulty", pa.float64()),
        ("reward", pa.float64()),
        ("agreement", pa.float64()),
        ("num_responses", pa.int64()),  # N the solver drew
        ("num_answered", pa.int64()),
        ("question_tokens", pa.int64()),
        ("judge_tokens", pa.int64()),
        ("response_tokens", pa.int64()),
        ("question_hash", pa.string()),
        (REJECT_STAGE, pa.string()),
        (REJECT_REASON, pa.string()),
        ("seed", pa.int64()),
        ("generator_model", pa.string()),
        ("judge_model", pa.string()),
        ("solver_model", pa.string()),
        ("reward_model", pa.string()),
        ("config_hash", pa.string()),
        ("sampling", pa.string()),
    ])
