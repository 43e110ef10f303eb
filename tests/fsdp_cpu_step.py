"""One training step of FSDP2 over gloo on CPU, driven through torch's own API, for
tests/test_fsdp_cpu.py:

    torchrun --nproc_per_node 2 tests/fsdp_cpu_step.py BATCH.pt MODEL_DIR OUT_DIR LR

accelerate runs FSDP only on accelerators (on CPU its Trainer falls back to DDP), so this does what
accelerate's FSDP2 path does for a Llama: `fully_shard` each decoder layer, then the root, on a
device mesh of the processes; one AdamW step, each rank on its half of the batch (gradients are
averaged); then gather the full state dict and save it with `save_pretrained` on rank 0, as
tpt/training/accelerate/fsdp.yaml (FULL_STATE_DICT) asks. Rank 0 also writes the local shard sizes.
"""

import json
import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from transformers import AutoModelForCausalLM, AutoTokenizer


def main(batch_path: str, model_dir: str, out_dir: str, lr: float) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,))
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    full_sizes = {n: p.numel() for n, p in model.named_parameters()}
    for layer in model.model.layers:  # TRANSFORMER_BASED_WRAP: one FSDP unit per decoder layer
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    shard_sizes = {n: p.to_local().numel() for n, p in model.named_parameters()}
    batch = {k: v[rank::world] for k, v in torch.load(batch_path).items()}  # this rank's half
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    losses = [torch.zeros(1) for _ in range(world)]
    dist.all_gather(losses, loss.detach().reshape(1))
    if rank == 0:
        unsharded = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        unsharded.save_pretrained(out_dir, state_dict=state)
        AutoTokenizer.from_pretrained(model_dir).save_pretrained(out_dir)
        with open(f"{out_dir}/fsdp_step.json", "w") as f:
            json.dump(
                {"world": world, "full": full_sizes, "shard": shard_sizes, "losses": [float(x) for x in losses]}, f
            )
    # Rank 1 waits while rank 0 saves. Then both leave without gloo's teardown: under load a rank aborted
    # there twice (std::terminate, "terminate called without an active exception"), once while the other
    # still saved (CI at fde9662) and once after the barrier (the AVX2 emulation at ec0436a). Everything
    # this script proves is written by then.
    dist.barrier()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]))
