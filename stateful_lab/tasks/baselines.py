"""The learned non-recurrent baselines, fitted in numpy on the flattened input
windows of the training part: a ridge regression for numbers, a logistic
regression for labels (one against the rest for more than two classes)."""

from __future__ import annotations

import numpy as np


def ridge(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, alpha: float) -> np.ndarray:
    """A ridge regression on the flattened windows (an intercept, not penalized),
    fitted in float64 by its normal equations; its predictions for `x_test`."""
    design = np.hstack([np.ones((len(x_train), 1)), x_train.reshape(len(x_train), -1).astype(np.float64)])
    penalty = alpha * np.eye(design.shape[1])
    penalty[0, 0] = 0.0
    weights = np.linalg.solve(design.T @ design + penalty, design.T @ y_train.astype(np.float64))
    return np.hstack([np.ones((len(x_test), 1)), x_test.reshape(len(x_test), -1).astype(np.float64)]) @ weights


def predicted_classes(predictions, classes: int, axis: int) -> np.ndarray:
    """Predicted class indices as floats: binary, a probability above one half is
    1; categorical, the most probable class along `axis` (which then goes)."""
    predictions = np.asarray(predictions, dtype=np.float64)
    if classes == 2:
        return (predictions > 0.5).astype(np.float64)
    return predictions.argmax(axis=axis).astype(np.float64)


def logistic(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, alpha: float) -> np.ndarray:
    """A logistic regression on the flattened windows (an intercept, not
    penalized; an L2 penalty `alpha` on the rest), fitted in float64 by Newton's
    method; its probabilities for `x_test`."""
    design = np.hstack([np.ones((len(x_train), 1)), x_train.reshape(len(x_train), -1).astype(np.float64)])
    penalty = alpha * np.eye(design.shape[1])
    penalty[0, 0] = 0.0
    labels, weights = y_train.astype(np.float64), np.zeros(design.shape[1])
    for _ in range(100):
        probabilities = 1 / (1 + np.exp(-(design @ weights)))
        gradient = design.T @ (probabilities - labels) + penalty @ weights
        curvature = design.T @ (design * (probabilities * (1 - probabilities))[:, None]) + penalty
        step = np.linalg.solve(curvature + 1e-9 * np.eye(len(weights)), gradient)
        weights -= step
        if np.abs(step).max() < 1e-10:
            break
    test = np.hstack([np.ones((len(x_test), 1)), x_test.reshape(len(x_test), -1).astype(np.float64)])
    return 1 / (1 + np.exp(-(test @ weights)))
