"""Data: splits, normalisation, TFDS by name (mock data) and Fashion-MNIST from Debian."""

import os

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
    ("mnist", (28, 28, 1), 10), ("cifar10", (32, 32, 3), 10),
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


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(data.DEBIAN_FASHION_MNIST_DIR),
                    reason="needs Debian's dataset-fashion-mnist (make test installs it)")
def test_fashion_mnist_prepared_offline_by_tfds_from_debian_files(tmp_path):
  dataset = data.load_dataset("fashion_mnist", tfds_data_dir=str(tmp_path))
  assert (len(dataset.train_labels), len(dataset.validation_labels),
          len(dataset.test_labels)) == (50_000, 10_000, 10_000)
  assert dataset.input_shape == (28, 28, 1) and dataset.num_classes == 10
  # Fashion-MNIST is balanced: 1,000 test images per class.
  assert np.bincount(dataset.test_labels).tolist() == [1000] * 10
  assert os.path.isdir(tmp_path / "fashion_mnist_debian")
