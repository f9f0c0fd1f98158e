"""The few exception types users see. Every message names what failed, the value, and the fix."""


class ScaleQuestError(Exception):
    """Base class for errors ScaleQuest raises on purpose."""


class ConfigError(ScaleQuestError):
    """A config value is missing, unknown or invalid (raised before Ray starts)."""


class StageInputError(ScaleQuestError):
    """A stage got a batch that breaks its contract (e.g. a missing column)."""


class ModelPrepareError(ScaleQuestError):
    """A model could not be fetched or converted."""


class EngineUnavailable(ScaleQuestError):
    """A model's vLLM engine died (its process was killed or crashed). Serve answers 503 until the replica is
    replaced; the pipeline restarts the engine actor (models.<name>.max_restarts) and retries its batches."""


class RunInterrupted(ScaleQuestError):
    """A synthesis run was stopped (Ctrl-C, SIGTERM); the message holds the command that resumes it."""


class TooManyErrors(ScaleQuestError):
    """More rows failed in stages than `max_error_share` allows; the run stopped and can be resumed."""
