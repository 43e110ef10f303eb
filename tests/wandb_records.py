"""Read an offline W&B run (`run-<id>.wandb`) back into plain Python, so tests check what was logged.

wandb 0.31 ships no reader for these files. The format is W&B's LevelDB-style log: a 7-byte file
header (":W&B", magic 0xBEE1, version), then 32 KiB blocks of records, each with a 7-byte header
(crc32, length, type: 1 full, 2 first, 3 middle, 4 last); a block's tail shorter than a header is
padding. Each record is a protobuf `wandb.proto.wandb_internal_pb2.Record`.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Dict, Iterator, List

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def raw_records(path: Path) -> Iterator[bytes]:
    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a W&B run file")
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0:  # zero padding to the end of the block
            pos += left
            continue
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk


def _items(items) -> Dict:
    out = {}
    for item in items:
        key = item.key or "/".join(item.nested_key)
        out[key] = json.loads(item.value_json)
    return out


def read_run(run_file: Path) -> Dict:
    """{'run': {id, group, name, project}, 'config': {...}, 'history': [{_step, ...}], 'summary': {...},
    'exit_code': int or None}."""
    from wandb.proto import wandb_internal_pb2 as pb

    out: Dict = {"run": {}, "config": {}, "history": [], "summary": {}, "exit_code": None}
    for raw in raw_records(run_file):
        record = pb.Record.FromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            out["run"] = {"id": r.run_id, "group": r.run_group, "name": r.display_name, "project": r.project}
            out["config"].update(_items(r.config.update))
        elif kind == "config":
            out["config"].update(_items(record.config.update))
        elif kind == "history":
            row = _items(record.history.item)
            row.setdefault("_step", record.history.step.num)
            out["history"].append(row)
        elif kind == "summary":
            out["summary"].update(_items(record.summary.update))
        elif kind == "exit":
            out["exit_code"] = record.exit.exit_code
    return out


def offline_runs(run_dir: Path) -> List[Path]:
    """The offline run files under a cell's run directory, oldest first."""
    return sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))
