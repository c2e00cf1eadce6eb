"""The UTF-8 bytes under an Arrow string array, for the parsers that work on bytes.

Pure: NumPy views of Arrow buffers, no copies where Arrow allows.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["string_bytes"]


def string_bytes(array: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of an Arrow string array and each value's bounds in them.

    Args:
        array: a ``string`` array (a chunked one is combined first).

    Returns:
        ``(offsets, data)``: ``data[offsets[i]:offsets[i + 1]]`` are value ``i``'s bytes
        (int64 offsets starting at 0; uint8 data, a view where possible).
    """
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    count = len(array)
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[
        array.offset : array.offset + count + 1
    ].astype(np.int64)
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer else np.zeros(1, np.uint8)
    data = data[offsets[0] : offsets[-1]]
    offsets -= offsets[0]
    return offsets, data
