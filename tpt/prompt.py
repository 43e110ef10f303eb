"""The chain-of-thought prompt, shared by think, train and eval: the model must be trained on the very
prompt it thinks and is evaluated with, so all three build the messages and render them here."""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

from tpt.models import ModelError
from tpt.tasks import reference_text, task_kind
from tpt.tasks.base import Problem
from tpt.verify.math import INSTRUCTIONS

Message = Dict[str, str]

# Passed to every chat template (generation and training alike). Llama 3.x templates stamp the
# current date into the system turn unless given one: a run crossing midnight would otherwise see
# other prompts in think, train and eval. This is the date Llama's own template uses without a clock.
CHAT_TEMPLATE_KWARGS = {"date_string": "26 Jul 2024"}


def user_turn(instruction: str, question: str) -> str:
    return f"{instruction}\n\nProblem: {question}"


def build_messages(
    question: str,
    instruction: str,
    few_shot: Sequence[Tuple[str, str]] = (),
    system_prompt: str | None = None,
    system_role: bool = True,
) -> List[Message]:
    """System prompt (optional), worked examples (question, solution) as earlier turns, then the
    question. Models whose template has no system role (Gemma) get the system prompt folded into
    the first user turn instead."""
    turns: List[Message] = []
    for shot_question, shot_solution in few_shot:
        turns.append({"role": "user", "content": user_turn(instruction, shot_question)})
        turns.append({"role": "assistant", "content": shot_solution})
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
        """`system_role`: the model's (model.system_role, found out from its template by preflight)."""
        kind = task_kind(task_cfg.name)
        self.instruction = task_cfg.instruction or INSTRUCTIONS[task_cfg.get("answer", "hash")]
        self.system_prompt = task_cfg.system_prompt
        self.few_shot = [(p.question, reference_text(p, kind)) for p in few_shot]
        self.system_role = system_role

    def __call__(self, question: str) -> List[Message]:
        return build_messages(question, self.instruction, self.few_shot, self.system_prompt, self.system_role)


def system_turn_accepted(tokenizer, model_id: str) -> bool:
    """Whether a model's chat template renders a system turn (Gemma's raises on one). A model without
    a chat template, or whose template renders no conversation at all, is refused: tpt prompts chat
    models, and training must see the very prompt generation saw."""
    if not getattr(tokenizer, "chat_template", None):
        raise ModelError(
            f"model {model_id!r} has no chat template (its tokenizer_config.json sets no "
            "chat_template): tpt prompts chat models; use the model's instruct/chat variant, or "
            "add a chat template to a local copy of it"
        )
    user = [{"role": "user", "content": "What is 1 + 1?"}]
    try:
        render(tokenizer, [[{"role": "system", "content": "Answer briefly."}] + user])
        return True
    except Exception:  # jinja's TemplateError, or a raise_exception() in the template
        pass
    try:
        render(tokenizer, [user])
    except Exception as e:
        raise ModelError(f"model {model_id!r}: its chat template cannot render a user turn: {e}") from e
    return False


def render(tokenizer, conversations: Sequence[List[Message]]) -> List[str]:
    """Each conversation as the model's chat template writes it, ready for the reply."""
    return [
        tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True, **CHAT_TEMPLATE_KWARGS)
        for c in conversations
    ]


def encode(tokenizer, texts: Sequence[str]) -> List[List[int]]:
    """Token ids of rendered prompts (their special tokens are already in the text)."""
    return tokenizer(list(texts), add_special_tokens=False)["input_ids"]
