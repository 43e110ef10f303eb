"""Loading a model for FSDP as tpt does it, on two gloo processes on CPU, for tests/test_fsdp_cpu.py:

    torchrun --nproc_per_node 2 tests/fsdp_cpu_load.py MODEL_DIR OUT_DIR

run with the FSDP_* / ACCELERATE_* variables `accelerate launch` derives from tpt's fsdp.yaml. Each rank
loads through tpt.models.load_causal_lm as tpt.training.sft.build_trainer does, then shards with
accelerate's own FSDP2 preparation (fsdp2_prepare_model: fully_shard per decoder layer, rank 0's
weights broadcast shard by shard). accelerate will not run FSDP on a CPU, so its Accelerator is stood
in for by the five attributes that function reads, and tpt is told it is on a GPU machine. Each rank
writes rank<N>.json: resident memory (VmRSS, kB) and held memory (`held_kb`) before loading, after loading
and after sharding; its peak resident memory (VmHWM) while loading; the bytes of its parameters' storage
after loading and after sharding; the loss of one fixed batch.
"""

import ctypes
import gc
import json
import sys
from pathlib import Path
from types import SimpleNamespace

# Count resident memory in 4 KiB pages even where the kernel backs every heap with 2 MiB pages
# (transparent_hugepage=always): a meta-device load touches a few dozen small allocations, each of
# which would otherwise count as 2 MiB. Before torch is imported, so all of its memory is counted so.
PR_SET_THP_DISABLE = 41
LIBC = ctypes.CDLL(None)
LIBC.prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)

import torch
import torch.distributed as dist
from accelerate import init_empty_weights
from accelerate.utils import FullyShardedDataParallelPlugin
from accelerate.utils.fsdp_utils import fsdp2_prepare_model
from malloc_info import mallinfo2  # tests/, this script's folder, is first on sys.path
from torch.distributed.device_mesh import init_device_mesh
from transformers import AutoConfig, AutoModelForCausalLM

import tpt.models
from tpt.models import load_causal_lm

tpt.models.device = lambda: "cuda"  # as on the GPU machines FSDP runs on (on a CPU accelerate trains as DDP)


def memory_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def storage_bytes(model) -> int:
    """Bytes this process holds for the model's parameters (a DTensor counts its local shard)."""
    total = 0
    for p in model.parameters():
        local = p.to_local() if hasattr(p, "to_local") else p
        if local.device.type != "meta":
            total += local.numel() * local.element_size()
    return total


def held_kb() -> int:
    """Memory this process holds: what malloc has handed out and not had back (heap and mapped blocks,
    glibc's mallinfo2), plus the pages of mapped files it has touched (safetensors' weights). Unlike
    VmRSS it leaves out freed memory the allocator keeps for reuse, which tpt/runtime.py's settings
    allow and which malloc_trim does not always hand back. Before glibc 2.33: VmRSS."""
    info = mallinfo2()
    if info is None:
        return memory_kb("VmRSS")
    return (info.uordblks + info.hblkhd) // 1024 + memory_kb("RssFile")


def release_freed_memory() -> None:
    """Collect what only reference cycles keep, and hand memory the allocator has freed back to the OS,
    so VmRSS counts what is alive as nearly as it can."""
    gc.collect()
    LIBC.malloc_trim(0)


def main(model_dir: str, out_dir: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,), mesh_dim_names=("fsdp",))
    accelerator = SimpleNamespace(
        state=SimpleNamespace(fsdp_plugin=FullyShardedDataParallelPlugin()),  # from the env
        torch_device_mesh=mesh,
        parallelism_config=SimpleNamespace(fsdp_dim_names=["fsdp"]),
        mixed_precision="no",
        is_main_process=rank == 0,
        device=torch.device("cpu"),
    )
    batch = torch.arange(64).reshape(2, 32) % 1000
    with init_empty_weights():  # import the model's code now: importing it costs ~250 MB, not the load
        AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    dist.barrier()
    release_freed_memory()
    before, held_before = memory_kb("VmRSS"), held_kb()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS, so the peak below is the load's own
    model = load_causal_lm(model_dir, dtype="float32", place=False)  # as build_trainer loads it
    peak_loading = memory_kb("VmHWM")
    loaded = memory_kb("VmRSS")
    loaded_bytes = storage_bytes(model)
    model = fsdp2_prepare_model(accelerator, model)
    release_freed_memory()
    sharded, held_sharded = memory_kb("VmRSS"), held_kb()
    sharded_bytes = storage_bytes(model)  # before any forward: one leaves the embedding's group gathered
    with torch.no_grad():
        loss = model(input_ids=batch, labels=batch).loss.item()
    Path(out_dir, f"rank{rank}.json").write_text(
        json.dumps(
            {
                "world": world,
                "rss_before_kb": before,
                "rss_loaded_kb": loaded,
                "peak_loading_kb": peak_loading,
                "rss_sharded_kb": sharded,
                "held_before_kb": held_before,
                "held_sharded_kb": held_sharded,
                "loaded_bytes": loaded_bytes,
                "sharded_bytes": sharded_bytes,
                "loss": loss,
            }
        )
    )
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
