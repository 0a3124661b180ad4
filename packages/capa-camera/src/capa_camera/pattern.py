"""The synthetic test pattern of ``sim://``: a moving bar and the frame number as a code.

The frame number is drawn as a row of ``BITS`` black/white blocks (most significant bit
first) across the top of the frame, large enough to survive JPEG/MJPEG compression, so a
test can decode the order of frames from the recorded video.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BITS", "decode_frame_number", "draw_frame"]

BITS = 16
_CODE_ROWS = 0.15  # fraction of the height used by the code row


def draw_frame(number: int, width: int, height: int, t_s: float, speed_px_s: float) -> Any:
    """A BGR frame (uint8, height x width x 3) showing ``number`` and a bar at ``t_s``."""
    import numpy as np

    frame = np.empty((height, width, 3), dtype=np.uint8)
    # Background: a horizontal gradient, so the picture is not trivially compressible.
    frame[:] = np.linspace(40, 160, width, dtype=np.uint8)[None, :, None]
    bar_w = max(4, width // 10)
    x = int(t_s * speed_px_s) % width
    frame[:, x : x + bar_w] = (0, 200, 255)
    code_h = max(6, int(height * _CODE_ROWS))
    block = width // BITS
    value = number % (1 << BITS)
    for bit in range(BITS):
        on = (value >> (BITS - 1 - bit)) & 1
        frame[:code_h, bit * block : (bit + 1) * block] = 255 if on else 0
    return frame


def decode_frame_number(frame: Any) -> int:
    """The number :func:`draw_frame` encoded in ``frame`` (after lossy compression)."""
    height, width = frame.shape[:2]
    code_h = max(6, int(height * _CODE_ROWS))
    block = width // BITS
    value = 0
    for bit in range(BITS):
        # Sample the block's centre, away from edges where compression smears.
        y0, y1 = code_h // 4, max(code_h // 4 + 1, 3 * code_h // 4)
        x0 = bit * block + block // 4
        x1 = max(x0 + 1, bit * block + 3 * block // 4)
        mean = float(frame[y0:y1, x0:x1].mean())
        value = (value << 1) | (1 if mean > 127 else 0)
    return value
