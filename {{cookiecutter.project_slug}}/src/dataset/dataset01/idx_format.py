"""The IDX file format that MNIST ships in: check a file's header against its size, write one.

torchvision parses these files itself; this module exists so that a truncated or foreign
file is reported by name before torchvision turns it into a numpy/torch traceback.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

# IDX type codes (third header byte) and the numpy dtype each one stores.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_DTYPE_CODES = {np.dtype("uint8"): 0x08}


class IdxFormatError(ValueError):
    """A file is not a complete IDX file."""


def read_idx_shape(path: Path) -> tuple[int, ...]:
    """Return the shape an IDX file declares, after checking that its size matches."""
    data = path.read_bytes()
    if len(data) < 4:
        raise IdxFormatError(f"{path} is {len(data)} bytes long: too short for an IDX header")
    zero, type_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or type_code not in _IDX_DTYPES or not 1 <= ndim <= 3:
        raise IdxFormatError(f"{path} does not start with an IDX header (magic {data[:4].hex()})")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise IdxFormatError(f"{path} is truncated inside its header")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    expected = header_size + int(np.prod(shape)) * _IDX_DTYPES[type_code].itemsize
    if len(data) != expected:
        raise IdxFormatError(
            f"{path} is {len(data)} bytes but its header declares shape {shape} "
            f"({expected} bytes): the file is truncated or corrupt"
        )
    return tuple(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (what MNIST's images and labels are)."""
    array = np.ascontiguousarray(array)
    if array.dtype not in _DTYPE_CODES:
        raise TypeError(f"write_idx writes uint8 arrays, got {array.dtype}")
    header = struct.pack(">HBB", 0, _DTYPE_CODES[array.dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + array.tobytes())
