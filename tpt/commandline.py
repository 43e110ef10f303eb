"""A command line checked before anything runs: every override names a config key, a config group and
one of its options (a suggestion when it is close to one), and every cell of the sweep composes.
`launch.py` runs it before Hydra does, with or without `-m`, `--plan`, `miniature=true` or
`cluster=slurm`, so a typo is one line naming the fix, never Hydra's stack.
"""

from __future__ import annotations

import difflib
from typing import Dict, Iterable, List, Optional, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from tpt.compose import CONF_DIR, compose, compose_plain
from tpt.config import Config, ConfigError, schema_fields, schema_has_key
from tpt.experiments import sweep
from tpt.pruning import RULES
from tpt.tasks import TASKS

# Config nodes whose keys are free (any sbatch flag): not checked
FREE = ("cluster.sbatch",)


def groups() -> Dict[str, List[str]]:
    """Each config group under conf/ and its options."""
    return {d.name: sorted(p.stem for p in d.glob("*.yaml")) for d in sorted(CONF_DIR.iterdir()) if d.is_dir()}


def schemas_at(top: str) -> List[object]:
    """The structured configs a top-level node may have: a task's or a pruning rule's own, or the one."""
    if top == "task":
        return [t.settings for t in TASKS.values()]
    if top == "pruning":
        return [r.settings for r in RULES.values()]
    return [schema_fields(Config)[top]]


def unknown_key(key: str) -> Optional[str]:
    """Why `key` (a dotted config key) names nothing, with the nearest key; None when some schema has it."""
    top, *rest = key.split(".")
    known = schema_fields(Config)
    if top not in known:
        return f"{top} is not a config key or group{suggest(top, [*known, *groups()])}"
    if not rest or any(key == f or key.startswith(f + ".") for f in FREE):
        return None
    level, path = schemas_at(top), top
    for part in rest:
        if not level:  # the key above is a value, not a node
            return f"{key} is not a config key ({path} holds a value)"
        keys = {k: t for schema in level for k, t in schema_fields(schema).items()}
        if part not in keys:
            return f"{key} is not a config key{suggest(part, keys, path + '.')}"
        level = [t for t in (schema_fields(schema).get(part) for schema in level) if t is not None]
        path = f"{path}.{part}"
    return None


def suggest(word: str, known: Iterable[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f"; did you mean {prefix}{close[0]}?" if close else ""


def check_overrides(overrides: Sequence[str]) -> None:
    """Refuse, in one line, an override Hydra or tpt would refuse for its name: a key no schema has, a
    group or an option that does not exist."""
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as e:
        raise ConfigError(f"cannot read the command line: {first_line(e)}") from None
    options = groups()
    extended = any(o.key_or_group == "hydra.searchpath" for o in parsed)  # other folders may add options
    for o in parsed:
        key = o.key_or_group
        if key == "hydra" or key.startswith(("hydra.", "hydra/")) or o.is_delete():
            continue
        if key in options:
            values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [str(o.value())]
            for value in values:
                if value not in options[key] and value != "null" and not extended:
                    written = o.input_line.split("=", 1)[0]  # with its + or ~
                    raise ConfigError(
                        f"{written}={value}: no such {key} (conf/{key}/){suggest(value, options[key], written + '=')}; "
                        f"the options: {', '.join(options[key])}"
                    )
            continue
        why = unknown_key(key)
        if why:
            raise ConfigError(f"{o.input_line}: {why}")


def check_command(overrides: Sequence[str]) -> int:
    """Check a command line's overrides, then compose every cell of its sweep as it will run (a miniature
    included); returns the number of cells. Every refusal is one ConfigError line."""
    check_overrides(overrides)
    try:
        cells = sweep(overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(first_line(e)) from None
    for cell in cells:
        try:
            compose(cell)
        except (HydraException, OmegaConfBaseException) as e:
            raise ConfigError(not_this_cells(cell) or first_line(e)) from None
    return len(cells)


def not_this_cells(cell: Sequence[str]) -> Optional[str]:
    """For a cell that set a task's or pruning rule's own key of another one than it has: which has it."""
    parsed = OverridesParser.create().parse_overrides(list(cell))
    own = [o for o in parsed if o.key_or_group.split(".")[0] in ("task", "pruning") and "." in o.key_or_group]
    if not own:
        return None
    plain = compose_plain([o.input_line for o in parsed if o not in own])
    for o in own:
        group, rest = o.key_or_group.split(".", 1)
        chosen = plain.task.name if group == "task" else plain.pruning.strategy
        registry = (
            {t.name: t.settings for t in TASKS.values()}
            if group == "task"
            else {r.name: r.settings for r in RULES.values()}
        )
        if not schema_has_key(registry[chosen], rest):
            owners = [name for name, schema in registry.items() if schema_has_key(schema, rest)]
            return (
                f"{o.input_line}: {o.key_or_group} is a setting of {group} {' and '.join(owners)}, and this cell's "
                f"{group} is {chosen}"
            )
    return None


def first_line(error: Exception) -> str:
    """What an exception of Hydra or OmegaConf says, on one line (the first line of it and of its cause)."""

    def head(e: BaseException) -> str:
        return next((line.strip() for line in str(e).splitlines() if line.strip()), repr(e))

    cause = error.__cause__
    return f"{head(error)}: {head(cause)}" if cause is not None else head(error)


__all__ = ["check_command", "check_overrides", "unknown_key"]
