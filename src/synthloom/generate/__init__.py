"""Generation: prompts from task, conditions and demonstrations; single- and multi-step; annotation."""

from .allocation import CellStats, allocate, cell_quotas
from .concept_tree import ConceptNode, ConceptTreeExpander, read_tree, write_tree
from .conditions import ConditionSampler, draw_conditions, label_quota
from .coverage import coverage_design
from .demonstrations import DemonstrationPool, DemonstrationSelector
from .dialogue import DialogueChain
from .engine import GenerationResult, Generator, PlannedRecord, load_support, rows_to_records
from .knowledge_graph import FactSampler, load_facts
from .parse import AnswerParser
from .personas import PersonaGenerator, read_personas
from .prompt import PromptBuilder
from .schema import JsonAnswerParser, Parsed, output_schema
from .sources import NeedsModel, resolve_conditions, resolve_offline
from .steps import Finished, StepChain, build_steps
from .vectors import VectorCache

__all__ = [
    "AnswerParser",
    "CellStats",
    "ConceptNode",
    "ConceptTreeExpander",
    "ConditionSampler",
    "DemonstrationPool",
    "DemonstrationSelector",
    "DialogueChain",
    "FactSampler",
    "Finished",
    "GenerationResult",
    "Generator",
    "JsonAnswerParser",
    "NeedsModel",
    "Parsed",
    "PersonaGenerator",
    "PlannedRecord",
    "PromptBuilder",
    "StepChain",
    "VectorCache",
    "allocate",
    "build_steps",
    "cell_quotas",
    "coverage_design",
    "draw_conditions",
    "label_quota",
    "load_facts",
    "load_support",
    "output_schema",
    "read_personas",
    "read_tree",
    "resolve_conditions",
    "resolve_offline",
    "rows_to_records",
    "write_tree",
]
