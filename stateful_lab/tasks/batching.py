"""Order and cut samples into whole batches (docs/design.md, "Batching and layouts").

A stateful layer carries lane i of batch k into lane i of batch k+1, so the row
order of every array here is the feeding order: row k*B + i is lane i of batch k.
"""

from __future__ import annotations

import numpy as np


def trim_to_batches(x: np.ndarray, y: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Drop trailing samples so that no partial batch reaches a stateful model.

    Keras 3 broadcasts a short last batch against the state without an error
    (keras-team/keras#21183), so a partial batch silently gives wrong numbers.
    Returns the trimmed arrays and how many samples were dropped.
    """
    keep = (len(x) // batch_size) * batch_size
    return x[:keep], y[:keep], len(x) - keep


def stream_windows(series: np.ndarray, timesteps: int, batch_size: int) -> np.ndarray:
    """The `streams` layout: cut the series into B contiguous streams, one per lane.

    Batch k holds window k of every stream, so lane i of batch k+1 continues lane i
    of batch k in time, which is what a stateful model assumes.
    """
    stream_length = len(series) // batch_size
    windows_per_stream = window_count(len(series), timesteps, batch_size, "streams") // batch_size
    used = windows_per_stream * timesteps
    features = series.shape[1]
    streams = np.stack([series[lane * stream_length : lane * stream_length + used] for lane in range(batch_size)])
    # (lanes, windows, T, F) -> (windows, lanes, T, F): batch-major feeding order.
    windows = streams.reshape(batch_size, windows_per_stream, timesteps, features)
    return windows.transpose(1, 0, 2, 3).reshape(-1, timesteps, features)


def block_windows(series: np.ndarray, timesteps: int, batch_size: int) -> np.ndarray:
    """The `blocks` layout of the custom-loop article: consecutive windows fill
    the lanes of one batch, so lane i of batch k+1 does NOT continue lane i of
    batch k (unless B = 1)."""
    windows = window_count(len(series), timesteps, batch_size, "blocks")
    return series[: windows * timesteps].reshape(windows, timesteps, series.shape[1])


LAYOUTS = {"streams": stream_windows, "blocks": block_windows}


def window_count(length: int, timesteps: int, batch_size: int, layout: str) -> int:
    """How many whole windows a series of `length` steps yields in `layout`; the
    layouts cut by this count, and config checks use it to refuse series too short
    for one batch."""
    if layout == "streams":
        return batch_size * ((length // batch_size) // timesteps)
    return batch_size * (length // (timesteps * batch_size))


def lane_source_positions(length: int, timesteps: int, batch_size: int, layout: str) -> np.ndarray:
    """The series position of each window's first step, in feeding order.

    Used to check continuity: lane i of batch k+1 continues lane i of batch k
    exactly when its window starts `timesteps` after the earlier one.
    """
    positions = np.arange(length, dtype=np.int64)[:, None]
    return LAYOUTS[layout](positions, timesteps, batch_size)[:, 0, 0]


def continuous_lanes(starts: np.ndarray, timesteps: int, batch_size: int) -> int:
    """How many lanes continue from the first batch into the second, out of B."""
    if len(starts) < 2 * batch_size:
        return 0
    return int(np.sum(starts[batch_size : 2 * batch_size] == starts[:batch_size] + timesteps))


def join_previous_window(x: np.ndarray, batch_size: int) -> np.ndarray:
    """For the `wide_window` variant: each sample with the previous window of its
    lane (the sample one batch earlier) joined in front, zeros before the first
    batch. A stateless model on these 2T steps backpropagates across the batch
    boundary that a stateful model's state cannot carry gradients through."""
    previous = np.zeros_like(x)
    previous[batch_size:] = x[:-batch_size]
    return np.concatenate([previous, x], axis=1)


def cut_sequences(x: np.ndarray, y: np.ndarray, timesteps: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut sequences longer than one window into windows fed as consecutive batches.

    Sequences g*B .. g*B+B-1 occupy the lanes of W = L/T consecutive batches; batch
    g*W + w holds window w of each, so a stateful model carries each sequence
    through its windows (truncated backprop through time). Every window keeps its
    sequence's label.
    """
    samples, length = x.shape[:2]
    windows = length // timesteps
    groups = samples // batch_size
    x_cut = (
        x.reshape(groups, batch_size, windows, timesteps, *x.shape[2:])
        .swapaxes(1, 2)
        .reshape(groups * windows * batch_size, timesteps, *x.shape[2:])
    )
    y_cut = np.repeat(y.reshape(groups, 1, batch_size), windows, axis=1).reshape(-1)
    return x_cut, y_cut


def streams_to_windows(streams: np.ndarray, timesteps: int) -> np.ndarray:
    """(B, L) streams into (W*B, T, 1) windows in feeding order: batch k holds
    window k of every stream."""
    lanes, length = streams.shape
    windows = length // timesteps
    cut = streams[:, : windows * timesteps].reshape(lanes, windows, timesteps)
    return cut.swapaxes(0, 1).reshape(windows * lanes, timesteps, 1)
