"""Generation: prompts from task, conditions and demonstrations; requests; records."""

from .conditions import draw_conditions, label_quota
from .demonstrations import DemonstrationPool
from .engine import GenerationResult, Generator, PlannedRecord, load_support
from .parse import AnswerParser
from .prompt import PromptBuilder

__all__ = [
    "AnswerParser",
    "DemonstrationPool",
    "GenerationResult",
    "Generator",
    "PlannedRecord",
    "PromptBuilder",
    "draw_conditions",
    "label_quota",
    "load_support",
]
