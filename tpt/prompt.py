"""The chain-of-thought prompt as chat messages, shared by think, train and eval.

Think and train must see the very same prompt, so both build it here from the question alone.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

from tpt.tasks.base import Problem, reference_text

Message = Dict[str, str]


def user_turn(instruction: str, question: str) -> str:
    return f"{instruction}\n\nProblem: {question}"


def build_messages(
    question: str,
    instruction: str,
    few_shot: Sequence[Problem] = (),
    system_prompt: str | None = None,
    system_role: bool = True,
) -> List[Message]:
    """System prompt (optional), worked examples as earlier turns, then the question.

    Models whose template has no system role (Gemma) get the system prompt folded into the first
    user turn instead.
    """
    turns: List[Message] = []
    for shot in few_shot:
        turns.append({"role": "user", "content": user_turn(instruction, shot.question)})
        turns.append({"role": "assistant", "content": reference_text(shot)})
    turns.append({"role": "user", "content": user_turn(instruction, question)})
    if system_prompt:
        if system_role:
            turns.insert(0, {"role": "system", "content": system_prompt})
        else:
            turns[0] = {"role": "user", "content": f"{system_prompt}\n\n{turns[0]['content']}"}
    return turns


class PromptBuilder:
    """Binds the task's prompt settings once; call with a question."""

    def __init__(self, task_cfg, few_shot: Sequence[Problem], system_role: bool):
        self.instruction = task_cfg.instruction
        self.system_prompt = task_cfg.system_prompt
        self.few_shot = list(few_shot)
        self.system_role = system_role

    def __call__(self, question: str) -> List[Message]:
        return build_messages(question, self.instruction, self.few_shot, self.system_prompt, self.system_role)
