import pytest
import torch

from tpt.backends import Sampling
from tpt.backends.hf import AnswerDoneStop, HFGenerator, left_pad
from tpt.prompt import build_messages, encode, render
from tpt.verify import answer_format


def conversations(n):
    return [build_messages(f"What is {i} + {i}?" + " please" * i, "Solve it.") for i in range(n)]


def prompts(gen, n):
    """Token ids of n chat prompts, rendered as the stages render them."""
    return encode(gen.tokenizer, render(gen.tokenizer, conversations(n)))


def test_n_samples_per_prompt_in_order(tiny_model_dir):
    gen = HFGenerator(str(tiny_model_dir), batch_size=3)
    out = gen.generate(prompts(gen, 4), Sampling(n=2, temperature=0.8, top_p=1.0, max_new_tokens=5, seed=0))
    assert [len(c) for c in out] == [2, 2, 2, 2]
    assert all(0 < c.n_tokens <= 5 for cs in out for c in cs)


def test_same_seed_same_samples(tiny_model_dir):
    gen = HFGenerator(str(tiny_model_dir), batch_size=4)
    s = Sampling(n=2, temperature=1.0, top_p=1.0, max_new_tokens=6, seed=3)
    a = gen.generate(prompts(gen, 3), s)
    b = gen.generate(prompts(gen, 3), s)
    other = gen.generate(prompts(gen, 3), Sampling(n=2, temperature=1.0, top_p=1.0, max_new_tokens=6, seed=4))
    texts = lambda out: [[c.text for c in cs] for cs in out]  # noqa: E731
    assert texts(a) == texts(b)
    assert texts(other) != texts(a)  # another seed samples otherwise
    assert all(cs[0] != cs[1] for cs in texts(a))  # and a question's n samples are not copies of one


def test_greedy_is_independent_of_batching(tiny_model_dir):
    """Left padding must not change what a prompt generates."""
    s = Sampling(n=1, temperature=0.0, top_p=1.0, max_new_tokens=6, seed=0)
    one, three = HFGenerator(str(tiny_model_dir), batch_size=1), HFGenerator(str(tiny_model_dir), batch_size=3)
    alone = [one.generate([p], s)[0][0].text for p in prompts(one, 3)]
    batched = [cs[0].text for cs in three.generate(prompts(three, 3), s)]
    assert alone == batched


def test_closing_frees_the_model_at_once_without_a_collection(tiny_model_dir):
    """close() drops the model's last reference and, on CPU, walks no heap for cycles (a full collection
    costs every stage 0.2-0.5 s): the model and its weights must go by reference counting alone."""
    import gc
    import weakref

    gen = HFGenerator(str(tiny_model_dir), batch_size=2)
    gen.generate(prompts(gen, 2), Sampling(n=2, temperature=1.0, top_p=1.0, max_new_tokens=4, seed=0))
    model, weight = weakref.ref(gen.model), weakref.ref(next(gen.model.parameters()))
    gc.disable()
    try:
        gen.close()
        assert model() is None and weight() is None
    finally:
        gc.enable()


def test_left_pad():
    ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


@pytest.mark.parametrize(
    "kind, texts",
    [
        ("math", ["2 + 3 = 5\n#### 5\n", "2 + 3 = 5\n#### 5", "thinking"]),
        ("code", ["Idea.\n```python\nprint(1)\n```", "```python\nprint(1)\n", "```text\nno\n```"]),
    ],
)
def test_answer_done_stop_marks_rows_once_the_answer_is_complete(tokenizer_dir, kind, texts):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    prompt = tok("Q:", add_special_tokens=False)["input_ids"]
    rows = [prompt + tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    # Prompts of equal length, completions right-padded: what generate hands the criterion.
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in rows])
    stop = AnswerDoneStop(tok, prompt_len=len(prompt), is_done=answer_format(kind).done)
    assert stop(ids, None).tolist() == [True, False, False]


def test_shared_prompt_cache_matches_plain_generate(tiny_model_dir):
    """Encoding the prompt once and sampling from its cache gives what plain generate gives."""
    gen = HFGenerator(str(tiny_model_dir), batch_size=4)
    ids_list = prompts(gen, 2)
    ours = gen.generate(ids_list, Sampling(n=2, temperature=0.0, top_p=1.0, max_new_tokens=6, seed=0))
    for ids, samples in zip(ids_list, ours):
        plain = gen.model.generate(
            input_ids=torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            do_sample=False,
            max_new_tokens=6,
            pad_token_id=gen.tokenizer.pad_token_id,
        )
        expected = gen.tokenizer.decode(plain[0, len(ids) :], skip_special_tokens=True)
        assert [s.text for s in samples] == [expected, expected]


def test_stop_strings_end_and_cut_a_sample():
    s = Sampling(n=1, temperature=0.7, top_p=1.0, max_new_tokens=8, seed=0, stop=("STOP", "\n\n\n"))
    assert s.finished("work STOP") and s.finished("#### 4\n") and not s.finished("work")
    assert s.finalize("work STOP and #### 4\nmore") == "work STOP"  # the first stop string wins
    assert s.finalize("a\n#### 4\nmore STOP") == "a\n#### 4"  # an answer line ending earlier still cuts
    code = Sampling(n=1, temperature=0.7, top_p=1.0, max_new_tokens=8, seed=0, kind="code")
    assert code.finalize("```python\nprint(1)\n```\nbye") == "```python\nprint(1)\n```"
    assert not code.finished("#### 4\n")  # a math answer line does not end a code sample
