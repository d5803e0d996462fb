"""Data: splits, normalisation, IDX files, TFDS by name (mock data) and Fashion-MNIST from Debian."""

import gzip
import os
import struct

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxsparse import data
from jaxsparse.errors import UserError


def test_digits_split_and_normalisation():
  dataset = data.load_dataset("digits", validation_size=300)
  assert (len(dataset.train_labels), len(dataset.validation_labels),
          len(dataset.test_labels)) == (1200, 300, 297)
  assert dataset.input_shape == (8, 8, 1) and dataset.num_classes == 10
  # Pixels in [0, 1] normalised with mean 0.5, std 0.5 lie in [-1, 1] and reach both ends.
  assert dataset.train_images.min() == -1.0 and dataset.train_images.max() == 1.0
  assert dataset.train_images.dtype == np.float32 and dataset.train_labels.dtype == np.int32


def test_split_is_fixed_by_its_seed_and_disjoint():
  first = data.load_dataset("digits", validation_size=300, split_seed=0)
  again = data.load_dataset("digits", validation_size=300, split_seed=0)
  other = data.load_dataset("digits", validation_size=300, split_seed=1)
  np.testing.assert_array_equal(first.validation_images, again.validation_images)
  assert not np.array_equal(first.validation_images, other.validation_images)
  train_rows = {row.tobytes() for row in first.train_images}
  assert not any(row.tobytes() in train_rows for row in first.validation_images[:50])


def test_resize_and_train_subset():
  dataset = data.load_dataset("digits", validation_size=300, image_size=28, train_examples=100)
  assert dataset.input_shape == (28, 28, 1) and len(dataset.train_labels) == 100


@pytest.mark.parametrize("name,shape,num_classes", [
    ("mnist", (28, 28, 1), 10), ("cifar10", (32, 32, 3), 10), ("cifar100", (32, 32, 3), 100),
    ("svhn_cropped", (32, 32, 3), 10), ("eurosat/rgb", (64, 64, 3), 10)])
def test_tfds_datasets_by_name_with_mock_data(name, shape, num_classes):
  with tfds.testing.mock_data(num_examples=60):
    dataset = data.load_dataset(name, validation_size=10)
  assert dataset.input_shape == shape and dataset.num_classes == num_classes
  assert len(dataset.validation_labels) == 10
  assert len(dataset.train_labels) + 10 + len(dataset.test_labels) >= 60
  assert len(dataset.test_labels) > 0
  assert dataset.train_labels.max() < num_classes


def test_unavailable_dataset_says_how_to_get_it(tmp_path, monkeypatch):
  def offline(*args, **kwargs):
    raise ConnectionError("no network")
  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
  with pytest.raises(UserError) as error:
    data.load_dataset("mnist", tfds_data_dir=str(tmp_path))
  message = str(error.value)
  assert "'mnist'" in message and "config.data.tfds_data_dir" in message and "\n" not in message


def test_validation_size_larger_than_training_split_is_rejected():
  with pytest.raises(UserError, match="config.data.validation_size=5000"):
    data.load_dataset("digits", validation_size=5000)


def _write_idx(path, array, type_code=0x08):
  """An IDX file written by hand from its specification: two zero bytes, the type code,
  the number of dimensions, each dimension as a big-endian uint32, then the data."""
  header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
  with gzip.open(path, "wb") as file:
    file.write(header + array.tobytes())


def test_read_idx_equals_the_array_written_by_the_specification(tmp_path):
  images = np.random.default_rng(0).integers(0, 256, (5, 3, 4), dtype=np.uint8)
  _write_idx(tmp_path / "images.gz", images)
  np.testing.assert_array_equal(data.read_idx(str(tmp_path / "images.gz")), images)
  values = np.arange(6, dtype=">i4").reshape(2, 3)
  _write_idx(tmp_path / "ints.gz", values, type_code=0x0C)
  np.testing.assert_array_equal(data.read_idx(str(tmp_path / "ints.gz")), values)


def test_a_damaged_idx_file_is_one_line(tmp_path):
  _write_idx(tmp_path / "short.gz", np.zeros((4, 2), np.uint8))
  content = gzip.open(tmp_path / "short.gz").read()
  with gzip.open(tmp_path / "short.gz", "wb") as file:
    file.write(content[:-3])
  with pytest.raises(UserError, match=r"short.gz holds 17 bytes but its header \(4, 2\) needs 20"):
    data.read_idx(str(tmp_path / "short.gz"))
  (tmp_path / "text.gz").write_bytes(gzip.compress(b"hello"))
  with pytest.raises(UserError, match="is not an IDX file"):
    data.read_idx(str(tmp_path / "text.gz"))


def test_digest_changes_with_the_split_and_not_with_a_reload():
  first = data.load_dataset("digits", validation_size=300)
  assert data.digest(first) == data.digest(data.load_dataset("digits", validation_size=300))
  assert data.digest(first) != data.digest(data.load_dataset("digits", validation_size=300,
                                                              split_seed=1))


@pytest.mark.skipif(not os.path.isdir(data.DEBIAN_FASHION_MNIST_DIR),
                    reason="needs Debian's dataset-fashion-mnist (make test installs it)")
def test_fashion_mnist_read_from_debian_idx_files_without_tensorflow():
  dataset = data.load_dataset("fashion_mnist")
  assert (len(dataset.train_labels), len(dataset.validation_labels),
          len(dataset.test_labels)) == (50_000, 10_000, 10_000)
  assert dataset.input_shape == (28, 28, 1) and dataset.num_classes == 10
  # Fashion-MNIST is balanced: 1,000 test images per class (6,000 per class in training).
  assert np.bincount(dataset.test_labels).tolist() == [1000] * 10
  assert (np.bincount(dataset.train_labels) + np.bincount(dataset.validation_labels)).tolist() \
      == [6000] * 10
  assert dataset.train_images.min() == -1.0 and dataset.train_images.max() == 1.0
