"""Exact checks of the task definitions (docs/design.md, "Tasks") and batching."""

import numpy as np
import pytest

from stateful_lab.config.experiment import parse_experiment
from stateful_lab.tasks import make_dataset
from stateful_lab.tasks.batching import continuous_lanes, lane_source_positions, trim_to_batches


def data_config(**data):
    return parse_experiment({"data": data, "train": {"batch_size": data.pop("batch_size", 4)}}).data


def test_first_timestep_label_is_own_first_bit_and_half_are_ones():
    data = data_config(task="first_timestep", train_samples=64, test_samples=32)
    dataset = make_dataset(data, batch_size=4, seed=3)
    for x, y in ((dataset.x_train, dataset.y_train), (dataset.x_test, dataset.y_test)):
        assert x.shape[1:] == (5, 1)
        np.testing.assert_array_equal(y, x[:, 0, 0])
        assert y.sum() == len(y) // 2
        assert set(np.unique(x)) <= {0.0, 1.0}
    assert dataset.x_train[:, 1:].std() > 0  # the other steps are random bits, not zeros


@pytest.mark.parametrize("batch_size", [1, 4, 7])
def test_collocated_label_is_first_bit_of_same_lane_in_previous_batch(batch_size):
    data = data_config(task="collocated", train_samples=70, test_samples=35, batch_size=batch_size)
    dataset = make_dataset(data, batch_size=batch_size, seed=0)
    x, y = dataset.x_train, dataset.y_train
    batches = len(x) // batch_size
    for k in range(1, batches):
        for lane in range(batch_size):
            assert y[k * batch_size + lane] == x[(k - 1) * batch_size + lane, 0, 0]
    # batch 0 has no previous batch; its labels are bits, not a copy of anything
    assert set(np.unique(y[:batch_size])) <= {0.0, 1.0}


def test_collocated_labels_are_not_the_own_first_bit():
    data = data_config(task="collocated", train_samples=256, test_samples=64)
    dataset = make_dataset(data, batch_size=4, seed=0)
    agreement = np.mean(dataset.y_train == dataset.x_train[:, 0, 0])
    assert 0.35 < agreement < 0.65


def test_same_seed_same_data_other_seed_other_data():
    data = data_config(task="first_timestep", train_samples=64, test_samples=32)
    first, again, other = (make_dataset(data, 4, seed) for seed in (5, 5, 6))
    np.testing.assert_array_equal(first.x_train, again.x_train)
    np.testing.assert_array_equal(first.x_test, again.x_test)
    assert not np.array_equal(first.x_train, other.x_train)


def test_trimming_drops_the_tail_and_says_how_many():
    data = data_config(task="first_timestep", train_samples=30, test_samples=17)
    dataset = make_dataset(data, batch_size=4, seed=0)
    assert len(dataset.x_train) == 28 and len(dataset.x_test) == 16
    assert any("dropped 2 train samples" in note for note in dataset.notes)
    assert any("dropped 1 test samples" in note for note in dataset.notes)
    untrimmed = make_dataset(data_config(task="first_timestep", train_samples=30, test_samples=17), 1, 0)
    np.testing.assert_array_equal(dataset.x_train, untrimmed.x_train[:28])


def test_trim_to_batches_keeps_whole_batches_only():
    x, y = np.arange(10).reshape(10, 1, 1), np.arange(10)
    x_kept, y_kept, dropped = trim_to_batches(x, y, 3)
    assert len(x_kept) == 9 and dropped == 1
    np.testing.assert_array_equal(y_kept, np.arange(9))


def test_random_series_last_value_target_and_shapes():
    data = data_config(
        task="random_series",
        series_length=1000,
        features=5,
        timesteps=20,
        layout="blocks",
        target="last_value",
        batch_size=32,
    )
    dataset = make_dataset(data, batch_size=32, seed=0)
    assert dataset.x_train.shape == (32, 20, 5)  # 1000 // (20 * 32) = 1 batch
    np.testing.assert_array_equal(dataset.y_train, dataset.x_train[:, -1, 0])
    assert any("uses 640 of 1000 steps" in note for note in dataset.notes)
    assert not np.array_equal(dataset.x_train, dataset.x_test)


def test_random_series_noise_target_is_independent_of_inputs():
    data = data_config(task="random_series", series_length=4000, timesteps=10, target="noise", batch_size=8)
    dataset = make_dataset(data, batch_size=8, seed=0)
    assert not np.array_equal(dataset.y_train, dataset.x_train[:, -1, 0])
    assert abs(np.corrcoef(dataset.y_train, dataset.x_train[:, -1, 0])[0, 1]) < 0.2
    assert dataset.y_train.min() >= 0 and dataset.y_train.max() < 1


@pytest.mark.parametrize("batch_size", [1, 4, 32])
def test_streams_layout_continues_every_lane(batch_size):
    starts = lane_source_positions(1000, timesteps=5, batch_size=batch_size, layout="streams")
    assert continuous_lanes(starts, 5, batch_size) == batch_size
    batches = starts.reshape(-1, batch_size)
    np.testing.assert_array_equal(np.diff(batches, axis=0), 5)  # every batch, not just the first


@pytest.mark.parametrize("batch_size", [2, 4, 32])
def test_blocks_layout_continues_no_lane(batch_size):
    starts = lane_source_positions(1000, timesteps=5, batch_size=batch_size, layout="blocks")
    assert continuous_lanes(starts, 5, batch_size) == 0
    # inside one batch the lanes are consecutive windows instead
    np.testing.assert_array_equal(np.diff(starts[:batch_size]), 5)


def test_blocks_layout_with_one_lane_is_continuous():
    starts = lane_source_positions(100, timesteps=5, batch_size=1, layout="blocks")
    assert continuous_lanes(starts, 5, 1) == 1


def test_layout_windows_hold_the_series_values():
    data = data_config(task="random_series", series_length=200, features=2, timesteps=5, layout="streams", batch_size=4)
    rng = np.random.default_rng(0)
    series = rng.random((200, 2), dtype=np.float32)
    dataset = make_dataset(data, batch_size=4, seed=0)
    # lane 1 of batch 0 starts stream 1, which begins at step 200 // 4 = 50
    np.testing.assert_array_equal(dataset.x_train[1], series[50:55])


def test_wide_window_joins_the_previous_window_of_the_same_lane():
    from stateful_lab.tasks import for_variant

    data = data_config(task="collocated", train_samples=40, test_samples=20)
    dataset = make_dataset(data, batch_size=4, seed=0)
    wide = for_variant(dataset, "wide_window", 4)
    assert wide.x_train.shape == (40, 10, 1) and wide.x_test.shape == (20, 10, 1)
    np.testing.assert_array_equal(wide.x_train[:4, :5], 0)  # nothing before the first batch
    for k in range(1, 10):
        for lane in range(4):
            row = k * 4 + lane
            np.testing.assert_array_equal(wide.x_train[row, :5], dataset.x_train[row - 4])
            np.testing.assert_array_equal(wide.x_train[row, 5:], dataset.x_train[row])
            # the label is now inside the window the model sees
            assert wide.y_train[row] == wide.x_train[row, 0, 0]
    assert for_variant(dataset, "stateful", 4) is dataset


@pytest.mark.parametrize("layout", ["streams", "blocks"])
def test_lag_copy_targets_are_the_bit_lag_steps_earlier_in_the_same_stream(layout):
    data = data_config(task="lag_copy", stream_length=60, lag=3, timesteps=5, layout=layout)
    dataset = make_dataset(data, batch_size=4, seed=0)
    x, y = dataset.x_train, dataset.y_train
    assert x.shape == (48, 5, 1) and y.shape == (48, 5, 1)
    starts = lane_source_positions(60 * 4 if layout == "blocks" else 60, 5, 4, layout)
    # rebuild each stream from its windows, then check y[t] = x[t - 3] along it
    if layout == "streams":
        streams_x = x.reshape(12, 4, 5).transpose(1, 0, 2).reshape(4, 60)
        streams_y = y.reshape(12, 4, 5).transpose(1, 0, 2).reshape(4, 60)
    else:
        streams_x, streams_y = x.reshape(1, 240), y.reshape(1, 240)
    np.testing.assert_array_equal(streams_y[:, 3:], streams_x[:, :-3])
    np.testing.assert_array_equal(streams_y[:, :3], 0)
    lanes_continue = continuous_lanes(starts, 5, 4)
    assert lanes_continue == (4 if layout == "streams" else 0)


def test_long_sequences_are_cut_into_windows_fed_as_consecutive_batches():
    data = data_config(task="first_timestep", train_samples=8, test_samples=8, sequence_length=15, timesteps=5)
    dataset = make_dataset(data, batch_size=4, seed=0)
    assert dataset.x_train.shape == (24, 5, 1)  # 8 sequences x 3 windows
    # batch w (w < 3) holds window w of sequences 0..3; batches 3..5 those of sequences 4..7
    sequences = np.concatenate([dataset.x_train[w * 4 : (w + 1) * 4] for w in range(3)], axis=1)
    labels = dataset.y_train[:4]
    np.testing.assert_array_equal(labels, sequences[:, 0, 0])
    for w in range(3):
        np.testing.assert_array_equal(dataset.y_train[w * 4 : (w + 1) * 4], labels)  # every window keeps it
    assert sequences[:, 5:].std() > 0


def test_reset_cadence_follows_the_policy():
    from stateful_lab.config.experiment import parse_experiment

    def cadence(**train):
        return parse_experiment({"data": {"sequence_length": 20}, "train": train}).batches_between_resets

    assert cadence(reset="sequence") == 4
    assert cadence(reset="batch") == 1
    assert cadence(reset="epoch") is None and cadence(reset="never") is None
