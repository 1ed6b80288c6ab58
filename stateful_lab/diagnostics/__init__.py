"""Measurements of the lab itself: `probe` (what a stateful layer's state does in
Keras 3, measured) and `bench` (how fast the engines train, against Keras `fit`).
May import: config, tasks, runs, training.
"""
