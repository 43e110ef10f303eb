"""The config layout: registries and config groups agree, conf/ holds no schema default twice, and
the cell directory name leaves out exactly the rerun-free keys."""

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from tests.conftest import compose
from tpt.backends import AUTO, BACKENDS
from tpt.compose import CONF_DIR
from tpt.config import Config
from tpt.naming import RERUN_FREE_KEYS, cell_name, pinned
from tpt.pruning import RULES
from tpt.sources import SOURCES
from tpt.tasks import TASKS


@pytest.mark.parametrize(
    "group, registry, key",
    [
        ("task", TASKS, "task.name"),
        ("backend", BACKENDS, "backend.name"),
        ("pruning", RULES, "pruning.strategy"),
        ("source", SOURCES, "source.kind"),
    ],
)
def test_every_registered_name_has_its_config_file_and_back(group, registry, key):
    options = {p.stem for p in (CONF_DIR / group).glob("*.yaml")}
    assert options == set(registry) | ({AUTO} if group == "backend" else set())
    for name in options:
        assert OmegaConf.select(compose([f"{group}={name}"]), key) == name


def _package(path: Path) -> str:
    """Where a config file's keys land: its `# @package` line, else its group."""
    first = path.read_text().splitlines()[0] if path.read_text() else ""
    if first.startswith("# @package"):
        package = first.split()[-1]
        return "" if package == "_global_" else package
    return path.parent.name


def _leaves(node, prefix=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, f"{prefix}{k}.")
    else:
        yield prefix.rstrip("."), node


def test_config_files_hold_only_what_differs_from_the_schema():
    defaults = dict(_leaves(OmegaConf.to_container(OmegaConf.structured(Config))))  # "???" where unset
    repeated = []
    # data_size options set data.size over a task's own value, so 2k repeats the default on purpose;
    # a paper row states its whole setting (size, rounds), whatever the defaults are.
    for path in sorted(p for p in CONF_DIR.glob("*/*.yaml") if p.parent.name not in ("data_size", "row")):
        body = yaml.safe_load(path.read_text()) or {}
        package = _package(path)
        for key, value in _leaves({k: v for k, v in body.items() if k not in ("defaults", "hydra")}):
            full = f"{package}.{key}" if package else key
            if full in defaults and defaults[full] == value:
                repeated.append(f"{path.relative_to(CONF_DIR)}: {full} = {value!r}")
    assert repeated == [], "schema defaults written again in conf/:\n" + "\n".join(repeated)


def test_cell_name_leaves_out_the_rerun_free_keys_by_prefix():
    assert cell_name([]) == "default"
    assert cell_name(["pruning=none", "data_size=1k"]) == "data_size=1k,pruning=none"  # sorted, as Hydra's
    free = [
        "name=x",
        "rounds=3",
        "logger=wandb",
        "cache.dir=/c",
        "cluster=slurm",
        "+cluster.sbatch.constraint=h100",
        "task.code.workers=4",
        "think.array_tasks=8",
        "eval.array_tasks=2",
    ]
    assert cell_name(free + ["pruning=none"]) == "pruning=none"
    assert cell_name(["model.id=/a/b"]) == "model.id=_a_b"  # no sub-folders
    assert set(RERUN_FREE_KEYS) >= {"name", "rounds", "logger", "cache", "cluster"}


def test_long_cell_names_stay_valid_file_names_and_distinct():
    many = ["task.instruction=" + "x" * 300]
    a, b = cell_name(many + ["pruning=gt"]), cell_name(many + ["pruning=none"])
    assert len(a.encode()) <= 200 and len(b.encode()) <= 200 and a != b


def test_the_pinned_config_drops_the_same_keys():
    a = pinned(
        compose(
            [
                "task=minicode",
                "rounds=1",
                "name=a",
                "cluster.array_parallelism=3",
                "task.code.workers=2",
                "think.array_tasks=4",
            ]
        )
    )
    b = pinned(compose(["task=minicode", "rounds=4", "name=b", "logger=wandb", "cache=off"]))
    assert a == b and "rounds" not in a and "cluster" not in a and "workers" not in a["task"]["code"]
    assert "array_tasks" not in a["think"] and a["think"]["chunk_size"] == 256  # the chunking does change samples


@pytest.mark.parametrize(
    "task, own, others",
    [
        ("gsm8k", {"strict_match"}, {"arith", "minicode", "code"}),
        ("arith", {"strict_match", "arith"}, {"minicode", "code"}),
        ("codecontests", {"code"}, {"arith", "minicode", "strict_match"}),
        ("minicode", {"code", "minicode"}, {"arith", "strict_match"}),
    ],
)
def test_a_cell_shows_only_its_own_tasks_settings(task, own, others):
    keys = set(compose([f"task={task}"]).task.keys())
    assert own <= keys and not others & keys


def test_another_tasks_setting_is_refused():
    from hydra.errors import ConfigCompositionException

    from tpt.config import ConfigError
    from tpt.validate import validate

    with pytest.raises(ConfigCompositionException, match="task.arith.operand_max"):  # at compose time
        compose(["task=gsm8k", "task.arith.operand_max=3"])
    with pytest.raises(ConfigError, match="task.code is not a config key"):  # `+` adds it: validation refuses
        validate(compose(["task=gsm8k", "+task.code.workers=2"]))


def test_a_task_name_without_its_settings_is_refused():
    from tpt.config import ConfigError
    from tpt.validate import validate

    with pytest.raises(ConfigError, match="task.name 'minicode' needs its own settings"):
        validate(compose(["task=gsm8k", "task.name=minicode"]))


def test_a_config_sent_as_plain_data_is_typed_again():
    """A SLURM array task gets its cell's config as a dict: it validates as the composed one did."""
    from tpt.config import ConfigError
    from tpt.preflight import typed
    from tpt.validate import validate

    for overrides in ([], ["task=minicode"], ["task=codecontests"]):
        cfg = compose(overrides)
        plain = OmegaConf.to_container(cfg, resolve=True)
        again = typed(plain)
        validate(again)
        assert OmegaConf.get_type(again, "task") is OmegaConf.get_type(cfg, "task")
        assert OmegaConf.to_container(again, resolve=True) == plain
    plain["task"]["code"]["tests"] = ["hidden"]
    with pytest.raises(ConfigError, match="task.code.tests"):
        validate(typed(plain))


def test_a_run_directory_refuses_another_config_but_not_a_key_added_since(tmp_path):
    """The pin: another data.size is refused, naming the key; a run directory pinned by an older tpt,
    before a key existed (here miniature_of, null unless miniature=true), still resumes."""
    import yaml

    from tpt.config import ConfigError
    from tpt.rundir import RunDir

    cfg = compose(["data.size=8"])
    with RunDir(tmp_path).claimed(cfg):
        pass
    with pytest.raises(ConfigError, match=r"differs in: data.size\)"):
        with RunDir(tmp_path).claimed(compose(["data.size=9"])):
            pass
    older = yaml.safe_load((tmp_path / "run_config.yaml").read_text())
    del older["miniature_of"]
    (tmp_path / "run_config.yaml").write_text(yaml.safe_dump(older))
    with RunDir(tmp_path).claimed(cfg):
        pass
