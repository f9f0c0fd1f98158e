"""Every stage honours the contract: missing columns → StageInputError naming stage, missing and present columns;
an empty batch → empty columns; the stage object pickles (Ray ships it to actors)."""

import pickle

import pytest

from scalequest.config import (
    GeneratorConfig,
    LanguageConfig,
    QuestionTypeConfig,
    ResponsesConfig,
    RewardConfig,
    SolvabilityConfig,
)
from scalequest.engines.chat import ChatFormatter
from scalequest.errors import StageInputError
from scalequest.stages.dedup import DropDuplicates
from scalequest.stages.difficulty import DropEasiest
from scalequest.stages.finalize import FinalizeRows
from scalequest.stages.generate_questions import AssignGenerators, GenerateQuestions
from scalequest.stages.language import FilterLanguage
from scalequest.stages.question_type import FilterQuestionType
from scalequest.stages.responses import GenerateResponses
from scalequest.stages.reward import ScoreResponses
from scalequest.stages.select import SelectBest
from scalequest.stages.solvability import JudgeSolvability


class _NoEngine:
    """Stands in where a test never reaches generation (empty batches, contract errors)."""

    model_path = "none"

    def generate(self, prompts, sampling, seeds=None):
        assert not prompts, "contract tests must not generate"
        return []


@pytest.fixture
def stages(tiny_model):
    fmt = ChatFormatter(str(tiny_model))
    gen = GeneratorConfig(name="g", model="m", share=1.0)
    return {
        "AssignGenerators": (AssignGenerators([gen], 0), ["id"]),
        "GenerateQuestions": (GenerateQuestions({"g": _NoEngine()}, {"g": ("p", [])}, {"g": gen.sampling}),
                              ["id", "generator", "seed"]),
        "FilterLanguage": (FilterLanguage(LanguageConfig()), ["question"]),
        "FilterQuestionType": (FilterQuestionType(QuestionTypeConfig()), ["question"]),
        "DropDuplicates": (DropDuplicates(), ["question"]),
        "JudgeSolvability": (JudgeSolvability(SolvabilityConfig(model="m"), _NoEngine(), fmt),
                             ["question", "seed"]),
        "DropEasiest": (DropEasiest(0.5), ["difficulty"]),
        "GenerateResponses": (GenerateResponses(ResponsesConfig(model="m"), _NoEngine(), fmt), ["question", "seed"]),
        "ScoreResponses": (ScoreResponses(RewardConfig(), 5), ["question", "responses", "response_answers"]),
        "SelectBest": (SelectBest(), ["responses", "response_answers", "response_rewards", "response_agreement"]),
        "FinalizeRows": (FinalizeRows({}, {}), ["id", "generator", "seed", "question"]),
    }


NAMES = ["AssignGenerators", "GenerateQuestions", "FilterLanguage", "DropDuplicates", "JudgeSolvability",
         "DropEasiest", "GenerateResponses", "ScoreResponses", "SelectBest", "FinalizeRows"]


@pytest.mark.parametrize("name", NAMES)
def test_stage_names_missing_columns(stages, name):
    stage, needed = stages[name]
    with pytest.raises(StageInputError) as err:
        stage({"unrelated": [1]})
    msg = str(err.value)
    assert name in msg and needed[0] in msg and "unrelated" in msg


@pytest.mark.parametrize("name", NAMES)
def test_stage_handles_empty_batch(stages, name):
    stage, needed = stages[name]
    out = stage({c: [] for c in needed})
    columns = out.column_names if hasattr(out, "column_names") else list(out)
    assert all(len(out[c]) == 0 for c in columns)
    assert "reject_reason" in columns or name == "AssignGenerators"


@pytest.mark.parametrize("name", NAMES)
def test_stage_pickles(stages, name):
    stage, _ = stages[name]
    assert type(pickle.loads(pickle.dumps(stage))) is type(stage)


def test_stage_rejects_ragged_columns():
    with pytest.raises(StageInputError, match="different lengths"):
        DropDuplicates()({"question": ["a", "b"], "reject_reason": [None]})


def test_an_all_null_column_from_ray_stays_null_through_a_stage():
    """Ray hands an all-null Arrow column to a numpy batch as NaN floats; a stage must pass it on as nulls, or the
    block (question_hash: double) no longer concatenates with one where the column holds strings."""
    import pyarrow as pa
    from ray.data.block import BlockAccessor

    from scalequest.stages.base import column

    untouched = pa.table({"id": [1, 2], "question_hash": pa.array([None, None]), "difficulty": [0.5, None]})
    batch = BlockAccessor.for_block(untouched).to_batch_format("numpy")
    assert batch["question_hash"].dtype.kind == "f"  # what Ray does with a null column
    out = BlockAccessor.batch_to_block({k: column(batch, k) for k in batch})
    assert column(batch, "difficulty")[0] == 0.5
    merged = pa.concat_tables([out, pa.table({"id": [3], "question_hash": ["h3"], "difficulty": [0.9]})],
                              promote_options="default")
    assert merged.column("question_hash").to_pylist() == [None, None, "h3"]
