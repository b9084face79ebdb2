"""Checks only a frozen bundle can answer, run as ``radview --bundle-self-check CHECK ...``.

Not a user command (``radview --help`` does not list it): the smoke test
(``packaging/test_bundle.py``) runs it on the frozen binary and runs the same functions from source, and
compares. Each check prints one JSON document on stdout.

- ``decode FILE ...``: decode each DICOM file with pydicom forced to the pylibjpeg plugins
  (``decoding_plugin="pylibjpeg"``); without it pydicom silently falls back to Pillow, so a bundle that
  lost the plugins (their entry points live in their dist-info) would still look fine.
- ``spawn``: start a child with multiprocessing's "spawn" method (what the inference process uses),
  run a small torch computation in it and return the result, proving ``freeze_support`` re-enters the
  frozen binary as the child.
- ``where``: the data and cache folders the bundle resolves, and the notices of any fallback.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sys

__all__ = ["decode", "main", "spawn", "where"]


def decode(paths: list[str]) -> dict:
    """``{path: {"shape", "dtype", "sha256"}}`` of each file's pixels, decoded by pylibjpeg only."""
    from pydicom import dcmread

    out = {}
    for path in paths:
        ds = dcmread(path)
        ds.pixel_array_options(decoding_plugin="pylibjpeg")
        array = ds.pixel_array
        out[os.path.basename(path)] = {
            "transfer_syntax": str(ds.file_meta.TransferSyntaxUID),
            "shape": list(array.shape),
            "dtype": str(array.dtype),
            "sha256": hashlib.sha256(array.tobytes()).hexdigest(),
        }
    return out


def _child(queue) -> None:
    import torch

    torch.manual_seed(0)
    weights = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    value = float((weights @ torch.ones(4)).sum())
    queue.put({"pid": os.getpid(), "frozen": bool(getattr(sys, "frozen", False)), "value": value})


def spawn() -> dict:
    """Run :func:`_child` in a spawned process; its pid, frozen flag and result, plus ours."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_child, args=(queue,))
    child.start()
    result = queue.get(timeout=300)
    child.join(timeout=60)
    return {"parent_pid": os.getpid(), "exitcode": child.exitcode, "child": result}


def where() -> dict:
    """The data and cache folders in use and why, if a fallback was taken."""
    from viewer.core.demo import bundled_demo_dir
    from viewer.core.user_dirs import cache_dir, data_dir, fallback_notices, resources_dir

    return {
        "data": str(data_dir()),
        "cache": str(cache_dir()),
        "resources": str(resources_dir()),
        "bundled_demo": str(bundled_demo_dir()),
        "notices": list(fallback_notices()),
    }


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("decode", "spawn", "where"):
        print("usage: radview --bundle-self-check decode FILE... | spawn | where", file=sys.stderr)
        return 2
    check, rest = argv[0], argv[1:]
    result = decode(rest) if check == "decode" else spawn() if check == "spawn" else where()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
