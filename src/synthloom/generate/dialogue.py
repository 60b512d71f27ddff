"""Dialogue by role-play: a user (with a persona) and an assistant answer each other, T turns.

Each turn is one call conditioned on the conversation so far. The assistant
sees the conversation as ordinary chat turns; the user role sees it as a
transcript and is asked for its next message only, which small models
follow far better than chat turns with the roles swapped. A record holds
the transcript as its first field and the turns as a list in `turns`.
"""

from __future__ import annotations

from typing import Any

from ..llm import Request, Scheduler
from ..recipe import DialogueSpec, Recipe
from ..templating import render
from .parse import AnswerParser
from .steps import Finished, step_seed

DEFAULT_USER = (
    "You are {% if conditions.persona is defined %}{{ conditions.persona }}{% elif task.role %}{{ task.role }}"
    "{% else %}a person{% endif %}, writing to an assistant ({{ task.description }})."
    "{% if label %} You want help with: {{ label_description or label | humanize }}.{% endif %}"
    "{% for key, value in conditions.items() if key != 'persona' %} {{ key | humanize | capitalize }}: {{ value }}.{% endfor %}"
    " Write like a real person: short, plain messages."
)
DEFAULT_ASSISTANT = (
    "You are a friendly, helpful assistant ({{ task.description }}). Answer in two or three sentences."
)
DEFAULT_OPENING = "Write your first message to the assistant. Write only the message."
_NEXT_USER = "The conversation so far:\n{transcript}\n\nWrite your next message to the assistant. Write only the message."


def transcript(turns: list[dict[str, str]]) -> str:
    return "\n".join(f"{t['role'].capitalize()}: {t['content']}" for t in turns)


class DialogueChain:
    """Plans the first turn and plays the rest; same interface as StepChain."""

    def __init__(self, recipe: Recipe):
        self.recipe = recipe
        self.spec = recipe.dialogue or DialogueSpec()
        self.parser = AnswerParser(["message"], ["user", "assistant"])
        gen = recipe.generation
        self.max_tokens = self.spec.max_tokens or gen.max_tokens
        self.field = next(iter(recipe.task.fields))
        self._task_vars = {"description": recipe.task.description, "role": recipe.task.role}

    def _system(self, template: str, plan: Any) -> str:
        return render(
            template,
            task=self._task_vars,
            label=plan.label,
            label_description=self.recipe.task.label_description(plan.label) if plan.label else None,
            conditions=dict(plan.conditions),
        )

    def request(self, turn: int, plan: Any, turns: list[dict[str, str]]) -> Request:
        spec, gen = self.spec, self.recipe.generation
        if turn % 2 == 0:  # the user's turn
            system = self._system(spec.user or DEFAULT_USER, plan)
            if turn == 0:
                ask = render(spec.opening or DEFAULT_OPENING, conditions=dict(plan.conditions), label=plan.label)
            else:
                ask = _NEXT_USER.format(transcript=transcript(turns))
            messages = ({"role": "system", "content": system}, {"role": "user", "content": ask})
        else:
            # a chat task's system prompt is the one its conversations are saved with: the assistant answers under it
            system = self._system(spec.assistant or self.recipe.task.system_prompt or DEFAULT_ASSISTANT, plan)
            messages = ({"role": "system", "content": system}, *({"role": t["role"], "content": t["content"]} for t in turns))
        return Request(
            messages=tuple(messages),
            temperature=gen.temperature,
            max_tokens=self.max_tokens,
            top_p=gen.top_p,
            seed=step_seed(gen.seed, plan.index, turn),
            stop=tuple(gen.stop) if gen.stop else None,
            sample=plan.sample,
        )

    async def complete(self, plan: Any, scheduler: Scheduler) -> Finished:
        done = Finished(label=plan.label)
        turns: list[dict[str, str]] = []
        for turn in range(self.spec.turns):
            request = plan.request if turn == 0 else self.request(turn, plan, turns)
            outcome = await scheduler.complete(request, self.parser)
            done.add(outcome)
            if not outcome.ok:
                done.error, done.failed_step = outcome.error, f"turn {turn + 1}"
                return done
            turns.append({"role": "user" if turn % 2 == 0 else "assistant", "content": outcome.value["message"]})
        done.fields = {self.field: transcript(turns), "turns": turns}
        return done


__all__ = ["DialogueChain", "transcript"]
