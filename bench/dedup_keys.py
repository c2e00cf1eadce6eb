"""Benchmark: the calling-list parser's duplicate-key rule alone, chunk after chunk.

Run: ``.venv/bin/python -m bench.dedup_keys [--keys 1000000] [--runs 5] [--order shuffled]``

It makes ``--keys`` keys shaped like the list benchmark's accounts (``AC00000001``...),
about 1% blank and 5% repeating an earlier key, cuts them into the chunks an import
sees (4,096 rows, doubling up to 50,000), and times
``RecordParser._reasons`` over them: the first-row-per-key rule within each chunk and
the look-up of the keys of earlier chunks. It prints the median wall and CPU time of
``--runs`` passes, the duplicates found (which must not depend on the code measured),
the memory the parser keeps of the keys seen and the growth of the process's peak RSS.

To compare two trees, run the same file with each on ``PYTHONPATH``, interleaved::

    PYTHONPATH=/path/to/other/tree .venv/bin/python bench/dedup_keys.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

FIRST_CHUNK_ROWS = 4096
CHUNK_ROWS = 50_000


def make_keys(count: int, order: str, seed: int = 7) -> pa.Array:
    """``count`` account keys: ~1% blank, ~5% repeating an earlier one."""
    rng = np.random.default_rng(seed)
    keys = np.array([f"AC{i:08d}" for i in range(count)], dtype=object)
    roll = rng.random(count)
    repeat = np.flatnonzero((roll < 0.05) & (np.arange(count) > 0))
    keys[repeat] = keys[(rng.random(len(repeat)) * repeat).astype(np.int64)]
    keys[roll > 0.99] = ""
    if order == "shuffled":
        keys = keys[rng.permutation(count)]
    return pa.array(keys.tolist(), pa.string())


def chunks(keys: pa.Array) -> Iterator[pa.Array]:
    """The keys in the chunk sizes an import reads: 4,096 rows, doubling, up to 50,000."""
    size, start = FIRST_CHUNK_ROWS, 0
    while start < len(keys):
        yield keys.slice(start, size)
        start += size
        size = min(CHUNK_ROWS, 2 * size)


def one_pass(keys: pa.Array) -> tuple[int, int]:
    """Run the rule over every chunk with a fresh parser.

    Returns:
        The duplicates found, and the bytes of numpy arrays the parser keeps of the keys.
    """
    from contact_center.parsing.lists import _REASON_CODE, DUPLICATE_KEY, RecordParser

    parser = RecordParser({"key": "account", "tel": "phone1"}, "account", "US", "bench.csv")
    duplicates = 0
    for chunk in chunks(keys):
        reason = parser._reasons(chunk, np.ones(len(chunk), dtype=bool))
        duplicates += int((reason == _REASON_CODE[DUPLICATE_KEY]).sum())
    kept = sum(v.nbytes for v in vars(parser._seen).values() if isinstance(v, np.ndarray))
    return duplicates, kept


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    """Parse the options, run the passes and print the medians."""
    import contact_center.parsing.lists

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--order", choices=["file", "shuffled"], default="file")
    args = parser.parse_args()
    keys = make_keys(args.keys, args.order)
    one_pass(keys.slice(0, 10_000))  # imports and first-call costs
    before = peak_rss_mb()
    walls, cpus, found, kept = [], [], set(), 0
    for _ in range(args.runs):
        wall, cpu = time.perf_counter(), time.process_time()
        duplicates, kept = one_pass(keys)
        found.add(duplicates)
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    print(
        f"dedup_keys {contact_center.parsing.lists.__file__}: "
        f"{args.keys:,} keys ({args.order} order), "
        f"duplicates {sorted(found)}, medians of {args.runs}: "
        f"wall {statistics.median(walls) * 1000:.0f} ms, "
        f"cpu {statistics.median(cpus) * 1000:.0f} ms, "
        f"keys kept in {kept / 1e6:.1f} MB, peak RSS +{peak_rss_mb() - before:.0f} MB"
    )


if __name__ == "__main__":
    main()
