"""The README and docs/ stay true to the code.

- Every `launch.py` command in a fenced block (```bash, ```sh, ```shell, ```console or untagged) of
  README.md and docs/*.md is composed as Hydra would run it, cell by cell, and validated.
- Every config key named in backticks (a dotted token whose first part is a top-level key, e.g.
  `task.eval_questions` or `data.size=N`) exists in the composed config.
- Every relative link between these pages points to a file that exists and, with `#anchor`, to a
  heading of it; and the README keeps its two commands within 150 lines (issue 21).

How a command is read: the words after `launch.py` up to a shell operator (`&&`, `|`, `;`, `&`) or a
redirection (`>`, `2>&1`); a trailing `# comment` is dropped; flags (`-m`, `--multirun`, `--cfg job`,
`--info ...`) are dropped; a quoted command (`sbatch --wrap "python launch.py ..."`) is read inside its
quotes. Comma sweeps are expanded with Hydra's override parser, `+experiment=tableN` with
tpt.experiments.cells. Placeholders are not composed: a word that is `...`, or an override whose value
holds `<...>` (`source.teacher=<hub id or dir>`) or `...`, is left out of the composition and only its
key is checked to exist, like a key named in prose; a command with such an override is composed but
not validated (the value it leaves out may be the one validation asks for, as source.teacher is).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import shlex
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import pytest
from omegaconf import DictConfig, OmegaConf

from tpt.compose import compose
from tpt.config import Config, schema_has_key
from tpt.experiments import sweep
from tpt.pruning import RULES
from tpt.tasks import TASKS
from tpt.validate import validate

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_COMMANDS = (
    "bash scripts/install.sh && .venv/bin/python launch.py",
    "bash scripts/install.sh && .venv/bin/python -m pytest -q",
)
MAX_README_LINES = 150

FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```", re.M | re.S)
SHELL_LANGS = ("", "bash", "sh", "shell", "console")
# Hydra's command-line flags: dropped, with the value of those that take one
FLAGS_WITH_VALUE = {
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--experimental-rerun",
}
INFO_CHOICES = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}
SHELL_END = re.compile(r"^(&&|\|\||\||;|&|\d*>.*|<.*|&>.*)$")
PLACEHOLDER = re.compile(r"<[^>]*>|\.\.\.")

TOP_LEVEL = sorted(f.name for f in dataclasses.fields(Config))
KEY = re.compile(r"(?<![\w./-])\+{0,2}((?:%s)(?:\.[A-Za-z_]\w*)+)" % "|".join(TOP_LEVEL))
FILE_SUFFIXES = {
    "json",
    "jsonl",
    "yaml",
    "yml",
    "py",
    "md",
    "csv",
    "png",
    "txt",
    "sh",
    "parquet",
    "log",
    "safetensors",
    "toml",
}  # `train.jsonl` is a file, not the key train.jsonl
FREE_FORM = ("cluster.sbatch",)  # +cluster.sbatch.<flag>=...: any sbatch flag
# ---- reading the pages ----------------------------------------------------------------------------


def page_text(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def rel(page: Path) -> str:
    return str(page.relative_to(ROOT))


def launch_words(line: str) -> Optional[List[str]]:
    """The words after `launch.py` on a shell line, up to the end of that command; None without one."""
    line = re.sub(
        r"=<[^<>]*>", lambda m: m.group(0).replace(" ", "_"), line
    )  # key=<hub id>: one word, not a redirection
    words = shlex.split(line, comments=True)
    for i, word in enumerate(words):
        if " " in word and "launch.py" in word:  # a quoted command: sbatch --wrap "python launch.py ..."
            inner = launch_words(word)
            if inner is not None:
                return inner
        if word == "launch.py" or word.endswith("/launch.py"):
            rest = []
            for w in words[i + 1 :]:
                if SHELL_END.match(w):
                    break
                rest.append(w)
            return rest
    return None


def overrides_of(words: Sequence[str]) -> Tuple[List[str], List[str]]:
    """(overrides to compose, keys of placeholder overrides) from the words after `launch.py`."""
    overrides, placeholder_keys = [], []
    skip = False
    for i, word in enumerate(words):
        if skip:
            skip = False
            continue
        if word.startswith("-"):
            skip = word in FLAGS_WITH_VALUE or (
                word == "--info" and i + 1 < len(words) and words[i + 1] in INFO_CHOICES
            )
            continue
        if word == "...":
            continue
        key, eq, value = word.partition("=")
        if eq and PLACEHOLDER.search(value):
            placeholder_keys.append(key.lstrip("+~"))
            continue
        overrides.append(word)
    return overrides, placeholder_keys


def quoted_commands() -> List[Tuple[str, str, List[str], List[str]]]:
    """(page, command line, overrides, placeholder keys) of every launch.py command in a shell block."""
    found = []
    for page in PAGES:
        for block in FENCE.finditer(page_text(page)):
            if block.group(1) not in SHELL_LANGS:
                continue
            for line in block.group(2).replace("\\\n", " ").splitlines():
                if "launch.py" not in line:
                    continue
                words = launch_words(line)
                if words is not None:
                    found.append((rel(page), line.strip(), *overrides_of(words)))
    return found


def prose(text: str) -> str:
    """The text outside fenced blocks (the blocks' commands are composed instead)."""
    return FENCE.sub("", text)


def named_keys() -> Dict[str, List[str]]:
    """Config key -> the pages that name it in backticks."""
    keys: Dict[str, List[str]] = {}
    for page in PAGES:
        for span in re.findall(r"`([^`\n]+)`", prose(page_text(page))):
            for match in KEY.finditer(span):
                key = match.group(1)
                if key.rsplit(".", 1)[-1] in FILE_SUFFIXES or key.startswith(FREE_FORM):
                    continue
                keys.setdefault(key, [])
                if rel(page) not in keys[key]:
                    keys[key].append(rel(page))
    return keys


# ---- composing ------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def composed(overrides: Tuple[str, ...]) -> DictConfig:
    return compose(list(overrides))


def config_for(key: str) -> DictConfig:
    """A config that has `key`: a task's or a pruning rule's own key is composed with one that has it."""
    group, _, rest = key.partition(".")
    registry = {
        "task": {t.name: t.settings for t in TASKS.values()},
        "pruning": {r.name: r.settings for r in RULES.values()},
    }.get(group, {})
    base = next((f"{group}={name}" for name, schema in registry.items() if rest and schema_has_key(schema, rest)), None)
    return composed((base,) if base else ())


def has_key(cfg: DictConfig, key: str) -> bool:
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent, throw_on_missing=False) if parent else cfg
    return isinstance(node, DictConfig) and leaf in list(node.keys())  # `in node` says False for ??? values


COMMANDS = quoted_commands()
KEYS = named_keys()


def test_the_pages_are_read():
    """An extractor that finds nothing would pass everything below."""
    assert len(COMMANDS) > 5, COMMANDS
    assert len(KEYS) > 5, KEYS
    assert any(o == [] for _, _, o, _ in COMMANDS), "the README's main command (no overrides) was not found"
    assert "data.size" in KEYS and "task.code.max_output_mb" in KEYS, sorted(KEYS)


def test_the_readme_is_short_and_keeps_its_two_commands():
    text = page_text(ROOT / "README.md")
    assert len(text.splitlines()) <= MAX_README_LINES, (
        f"README.md has {len(text.splitlines())} lines: move detail to docs/"
    )
    for command in README_COMMANDS:
        assert command in text, f"README.md lost the command {command!r}"


@pytest.mark.parametrize("page,line,overrides,placeholder_keys", COMMANDS, ids=[f"{p}: {c}" for p, c, _, _ in COMMANDS])
def test_quoted_command_composes(page, line, overrides, placeholder_keys):
    cells = sweep(overrides)
    assert cells, f"{page}: `{line}` expands to no cell"
    for cell in cells:
        try:
            cfg = composed(tuple(cell))
            if not placeholder_keys:  # a placeholder's real value may be what validation asks for
                validate(cfg)
        except Exception as e:  # Hydra's and tpt's errors alike: the message says what no longer holds
            pytest.fail(f"{page}: `{line}` no longer runs; its cell {cell} fails: {type(e).__name__}: {e}")
    for key in placeholder_keys:
        assert has_key(config_for(key), key), f"{page}: `{line}` sets {key}, which is not a config key"


@pytest.mark.parametrize("key", sorted(KEYS))
def test_named_key_exists(key):
    assert has_key(config_for(key), key), f"{key} is not a config key (named in {', '.join(KEYS[key])})"


# ---- links ----------------------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_]{2,}|`", "", heading.strip()).lower()  # code spans and bold keep their text
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set:
    seen: Dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", prose(page_text(page)), re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links() -> Iterator[Tuple[str, str]]:
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", prose(page_text(page))):
            if not re.match(r"[a-z]+:", target):  # not http(s): or mailto:
                yield rel(page), target


LINKS = sorted(set(links()))


@pytest.mark.parametrize("page,target", LINKS, ids=[f"{p} -> {t}" for p, t in LINKS])
def test_link_resolves(page, target):
    path, _, anchor = target.partition("#")
    file = (ROOT / page).parent / path if path else ROOT / page
    assert file.exists(), f"{page} links to {target}: no such file"
    if anchor and file.suffix == ".md":
        assert anchor in anchors(file), f"{page} links to {target}: no such heading in {file.name}"


def test_the_readmes_table_is_the_one_docs_benchmarks_records():
    """A measured figure lives in one place: the README's example table is docs/benchmarks.md's record."""

    def table(text: str) -> str:
        start = text.index("round | Pass@1 | Pass@4")
        return text[start : text.index("```", start)].strip()

    assert table(page_text(ROOT / "README.md")) == table(page_text(ROOT / "docs" / "benchmarks.md"))


def test_measured_times_live_in_docs_benchmarks_only():
    """The CPUs of docs/benchmarks.md (A-D) and the times measured on them are named there only: other pages
    and tpt's code link to it (a figure copied elsewhere goes stale there)."""
    named = re.compile(r"\bCPU [A-D]\b|\b\d+m\d\ds\b")
    others = [p for p in PAGES if p.name != "benchmarks.md"] + sorted((ROOT / "tpt").rglob("*.py"))
    found = [
        f"{rel(p)}:{n}" for p in others for n, line in enumerate(p.read_text().splitlines(), 1) if named.search(line)
    ]
    assert not found, found
