"""Datasets as in-memory arrays: Fashion-MNIST's IDX files, TFDS by name, scikit-learn's digits.

Splits follow the model zoos: ``validation_size`` examples of the official
training split are held out for validation with a fixed seed, and test
accuracy is measured on the official test split. Images are scaled to [0, 1]
and normalised with ``(x - mean) / std`` (0.5 / 0.5 in the zoos).

Tiny-ImageNet, which TFDS lacks, is read from a local copy of its archive
(:func:`load_tiny_imagenet`).

Fashion-MNIST, the zoos' dataset, is read straight from the four IDX files of
Debian's ``dataset-fashion-mnist`` package (in the files' order), so the main
job needs neither TensorFlow nor a network. Other datasets go through TFDS
(the optional ``tfds`` extra, which brings TensorFlow to prepare them);
``digits`` needs scikit-learn (the ``digits`` extra).
"""

from __future__ import annotations

import gzip
import hashlib
import os
from typing import NamedTuple

import numpy as np

from jaxsparse.errors import UserError

#: Each dataset's ``(image shape, classes, examples in its official training split)``, known
#: without loading it (an import with ``--no_evaluation`` needs no data).
DATASET_SHAPES: dict[str, tuple[tuple[int, int, int], int, int]] = {
    "fashion_mnist": ((28, 28, 1), 10, 60_000), "mnist": ((28, 28, 1), 10, 60_000),
    "cifar10": ((32, 32, 3), 10, 50_000), "cifar100": ((32, 32, 3), 100, 50_000),
    "svhn_cropped": ((32, 32, 3), 10, 73_257), "eurosat/rgb": ((64, 64, 3), 10, 21_600),
    "digits": ((8, 8, 1), 10, 1_500), "tiny_imagenet": ((64, 64, 3), 200, 100_000)}
#: Datasets known to work: TFDS names, scikit-learn's 8x8 ``digits`` and a local
#: Tiny-ImageNet.
SUPPORTED_DATASETS: tuple[str, ...] = tuple(DATASET_SHAPES)
#: Tiny-ImageNet is not in TFDS: it is read from a local copy of the official archive.
TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"

DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
#: The IDX files of MNIST-style datasets: (images, labels) of the train and test splits.
IDX_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
             "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
#: IDX type codes (the third byte of the header) of the types these files use.
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class Dataset(NamedTuple):
  """Normalised NHWC float32 images and int32 labels of the three splits."""
  name: str
  num_classes: int
  train_images: np.ndarray
  train_labels: np.ndarray
  validation_images: np.ndarray
  validation_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray

  @property
  def input_shape(self) -> tuple[int, int, int]:
    """(height, width, channels) of one image."""
    return tuple(self.train_images.shape[1:])


def check_dataset(dataset: Dataset) -> None:
  """Raises a UserError naming the first split that is not ``[N, H, W, C]`` float images
  with ``N`` integer labels in ``[0, num_classes)``."""
  if dataset.num_classes < 2:
    raise UserError(f"dataset {dataset.name!r} has num_classes={dataset.num_classes}; a "
                    "classifier needs at least 2")
  for split in ("train", "validation", "test"):
    images, labels = getattr(dataset, f"{split}_images"), getattr(dataset, f"{split}_labels")
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 4:
      raise UserError(f"dataset {dataset.name!r}: {split} images have shape {images.shape}; "
                      "expected [examples, height, width, channels] (add a channel axis to "
                      "grey-scale images)")
    if images.shape[1:] != dataset.input_shape:
      raise UserError(f"dataset {dataset.name!r}: {split} images are {images.shape[1:]} but "
                      f"training images are {dataset.input_shape}; all splits need one shape")
    if labels.shape != (len(images),):
      raise UserError(f"dataset {dataset.name!r}: {len(images)} {split} images but labels of "
                      f"shape {labels.shape}; expected one integer label per image")
    if len(labels) and not (np.issubdtype(labels.dtype, np.integer)
                            and 0 <= labels.min() and labels.max() < dataset.num_classes):
      raise UserError(f"dataset {dataset.name!r}: {split} labels range over "
                      f"[{labels.min()}, {labels.max()}] ({labels.dtype}) but num_classes is "
                      f"{dataset.num_classes}; use integer labels 0 to {dataset.num_classes - 1}")


def load_dataset(name: str, *, validation_size: int = 10_000, split_seed: int = 0,
                 mean: float | tuple[float, ...] = 0.5, std: float | tuple[float, ...] = 0.5,
                 image_size: int = 0, train_examples: int = 0,
                 tfds_data_dir: str | None = None, local_dir: str = "") -> Dataset:
  """Loads dataset ``name`` into memory, split and normalised.

  Args:
    name: a TFDS name (e.g. ``'fashion_mnist'``) or ``'digits'``.
    validation_size: examples of the training split held out for validation.
    split_seed: seed of the train/validation split (fixed across members).
    mean, std: normalisation of the [0, 1]-scaled pixels: one number, or one per channel.
    image_size: if > 0, images are resized (bilinear) to this height and width.
    train_examples: if > 0, keep only the first this many training examples
      (after the validation split), for quick runs.
    tfds_data_dir: where TFDS keeps prepared datasets (None: TFDS's default,
      ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).
    local_dir: ``'tiny_imagenet'``: the ``tiny-imagenet-200`` directory of the official
      archive (:func:`load_tiny_imagenet`).

  Raises:
    UserError: the data is not available; the message says how to get it.
  """
  if name == "digits":
    images, labels, test_images, test_labels, num_classes = _load_digits()
  elif name == "tiny_imagenet":
    images, labels, test_images, test_labels, num_classes = load_tiny_imagenet(local_dir)
  elif name == "fashion_mnist" and _has_idx_files(DEBIAN_FASHION_MNIST_DIR):
    images, labels, test_images, test_labels, num_classes = load_idx_directory(
        DEBIAN_FASHION_MNIST_DIR)
  else:
    images, labels, test_images, test_labels, num_classes = _load_tfds(name, tfds_data_dir)
  if not 0 < validation_size < len(images):
    raise UserError(f"config.data.validation_size={validation_size} must be between 1 and "
                    f"{len(images) - 1} (the training split of {name!r} has {len(images)} examples)")
  order = np.random.default_rng(split_seed).permutation(len(images))
  validation, train = order[:validation_size], order[validation_size:]
  if train_examples > 0:
    train = train[:train_examples]
  prepare = lambda x: _normalise(x, mean, std, image_size)
  return Dataset(name, num_classes,
                 prepare(images[train]), labels[train].astype(np.int32),
                 prepare(images[validation]), labels[validation].astype(np.int32),
                 prepare(test_images), test_labels.astype(np.int32))


def _normalise(images: np.ndarray, mean, std, image_size: int) -> np.ndarray:
  images = images.astype(np.float32) / 255.0
  if images.ndim == 3:
    images = images[..., None]
  for field, value in (("mean", mean), ("std", std)):
    if np.ndim(value) and len(value) != images.shape[-1]:
      raise UserError(f"config.data.channel_{field}={tuple(value)} has {len(value)} values "
                      f"but the images have {images.shape[-1]} channels; give one value, or "
                      "one per channel")
  mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
  if image_size > 0 and images.shape[1:3] != (image_size, image_size):
    import jax  # local: only this rarely used option needs it here
    images = np.asarray(jax.image.resize(
        images, (images.shape[0], image_size, image_size, images.shape[3]), "bilinear"))
  return (images - mean) / std


def digest(dataset: Dataset) -> str:
  """A short fingerprint of a dataset's splits and order (labels, shapes and the first
  images of each split): a run resumes only on the data it started with."""
  content = hashlib.sha256(dataset.name.encode())
  for split in ("train", "validation", "test"):
    images, labels = getattr(dataset, f"{split}_images"), getattr(dataset, f"{split}_labels")
    content.update(str(np.shape(images)).encode())
    content.update(np.ascontiguousarray(labels, dtype=np.int32).tobytes())
    content.update(np.ascontiguousarray(images[:64], dtype=np.float32).tobytes())
  return content.hexdigest()[:16]


def read_idx(path: str) -> np.ndarray:
  """The array in an IDX file (gzipped or not), the format of MNIST and Fashion-MNIST.

  Raises:
    UserError: the file is not a complete IDX file.
  """
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rb") as file:
      content = file.read()
  except (OSError, EOFError) as error:
    raise UserError(f"cannot read {path} ({error}); reinstall the dataset's files") from error
  if len(content) < 4 or content[:2] != b"\0\0" or content[2] not in _IDX_TYPES:
    raise UserError(f"{path} is not an IDX file (its header is {content[:4]!r}); reinstall the "
                    "dataset's files")
  dtype, ndim = np.dtype(_IDX_TYPES[content[2]]), content[3]
  shape = tuple(int(size) for size in np.frombuffer(content, ">u4", count=ndim, offset=4))
  expected = 4 + 4 * ndim + int(np.prod(shape)) * dtype.itemsize
  if len(content) != expected:
    raise UserError(f"{path} holds {len(content)} bytes but its header {shape} needs {expected}; "
                    "the file is damaged: reinstall the dataset's files")
  return np.frombuffer(content, dtype, offset=4 + 4 * ndim).reshape(shape).astype(dtype.newbyteorder("="))


def _has_idx_files(directory: str) -> bool:
  return all(os.path.isfile(os.path.join(directory, name))
             for pair in IDX_FILES.values() for name in pair)


def load_idx_directory(directory: str, num_classes: int = 10):
  """Train and test images and labels from the IDX files in ``directory``
  (:data:`IDX_FILES`), as ``(images, labels, test_images, test_labels, num_classes)``."""
  arrays = [read_idx(os.path.join(directory, name))
            for split in ("train", "test") for name in IDX_FILES[split]]
  for images, labels in (arrays[:2], arrays[2:]):
    if len(images) != len(labels):
      raise UserError(f"{directory}: {len(images)} images but {len(labels)} labels in one split; "
                      "reinstall the dataset's files")
  return (*arrays, num_classes)


def _load_digits():
  """scikit-learn's 8x8 digits (1,797 images): the last 297 of a fixed shuffle are the test split."""
  try:
    from sklearn.datasets import load_digits
  except ImportError as error:
    raise UserError("config.data.name='digits' needs scikit-learn; install it with "
                    "pip install -e '.[digits]' (make test installs it)") from error
  digits = load_digits()
  images = (digits.images / 16.0 * 255.0).astype(np.uint8)
  order = np.random.default_rng(0).permutation(len(images))
  train, test = order[:1500], order[1500:]
  return images[train], digits.target[train], images[test], digits.target[test], 10


def load_tiny_imagenet(directory: str):
  """Tiny-ImageNet from ``directory``, the ``tiny-imagenet-200`` folder of the official
  archive (:data:`TINY_IMAGENET_URL`): ``wnids.txt`` (the 200 classes; a class's label is
  its line, as in the ResNet-18 zoo's loader), ``train/<wnid>/images/*.JPEG`` and
  ``val/images`` labelled by ``val/val_annotations.txt``. The labelled ``val`` split is the
  test split (the zoos test on it; the official test split has no labels). Grey images
  become RGB. Returns the arrays :func:`load_dataset` splits."""
  if not directory:
    raise UserError("tiny_imagenet is read from a local copy: download "
                    f"{TINY_IMAGENET_URL}, unzip it, and set config.data.local_dir (or "
                    "--data_dir) to its tiny-imagenet-200 directory")
  wnids_path = os.path.join(directory, "wnids.txt")
  if not os.path.isfile(wnids_path):
    raise UserError(f"{directory} has no wnids.txt; give the tiny-imagenet-200 directory of "
                    f"{TINY_IMAGENET_URL}")
  with open(wnids_path, encoding="utf-8") as file:
    wnids = [line.strip() for line in file if line.strip()]
  label_of = {wnid: label for label, wnid in enumerate(wnids)}
  train = [(os.path.join(directory, "train", wnid, "images", name), label_of[wnid])
           for wnid in wnids if os.path.isdir(os.path.join(directory, "train", wnid, "images"))
           for name in sorted(os.listdir(os.path.join(directory, "train", wnid, "images")))]
  test = _tiny_imagenet_val(directory, label_of)
  if not train or not test:
    raise UserError(f"{directory} holds {len(train)} training and {len(test)} val images; "
                    "give the tiny-imagenet-200 directory of the official archive")
  images, labels = _read_images(train)
  test_images, test_labels = _read_images(test)
  return images, labels, test_images, test_labels, len(wnids)


def _tiny_imagenet_val(directory: str, label_of: dict[str, int]) -> list[tuple[str, int]]:
  """``(path, label)`` of Tiny-ImageNet's val images, from ``val/val_annotations.txt``."""
  annotations = os.path.join(directory, "val", "val_annotations.txt")
  files = []
  try:
    with open(annotations, encoding="utf-8") as file:
      for number, line in enumerate(file, start=1):
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in label_of:
          raise UserError(f"{annotations}, line {number}: expected '<image>\\t<wnid>...' "
                          "with a wnid of wnids.txt; restore the file from the archive")
        files.append((os.path.join(directory, "val", "images", fields[0]), label_of[fields[1]]))
  except OSError as error:
    raise UserError(f"cannot read {annotations} ({error}); give the tiny-imagenet-200 "
                    "directory of the official archive") from error
  return files


def _read_images(files: list[tuple[str, int]]) -> tuple[np.ndarray, np.ndarray]:
  """RGB uint8 images and their labels from ``(path, label)`` pairs."""
  from PIL import Image  # Pillow comes with matplotlib, a dependency
  arrays = []
  for path, _ in files:
    try:
      with Image.open(path) as image:
        arrays.append(np.asarray(image.convert("RGB")))
    except OSError as error:
      raise UserError(f"cannot read the image {path} ({error}); restore it from the "
                      "archive") from error
  shapes = {array.shape for array in arrays}
  if len(shapes) > 1:
    raise UserError(f"the images have several shapes ({sorted(shapes)[:3]}); Tiny-ImageNet's "
                    "are all 64x64x3")
  return np.stack(arrays), np.array([label for _, label in files], np.int32)


def _import_tfds(name: str):
  """TFDS, quiet (TensorFlow's C++ and absl logs silenced), or a UserError saying how to get it."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  try:
    import tensorflow_datasets as tfds
  except ImportError as error:
    hint = (f" (or install Debian's dataset-fashion-mnist, read without TFDS from "
            f"{DEBIAN_FASHION_MNIST_DIR})" if name == "fashion_mnist" else "")
    raise UserError(f"config.data.name={name!r} is read through TensorFlow Datasets, which is "
                    f"not installed; install it with pip install -e '.[tfds]'{hint}") from error
  return tfds


def _load_tfds(name: str, data_dir: str | None):
  tfds = _import_tfds(name)
  builder = _prepared_builder(name, data_dir)

  def load(split):
    # Fixed-size batches rather than batch_size=-1, which aborts inside
    # TensorFlow for datasets of unknown length (TFDS mock data).
    batches = list(tfds.as_numpy(builder.as_dataset(split=split, batch_size=10_000)))
    return {key: np.concatenate([batch[key] for batch in batches]) for key in ("image", "label")}

  num_classes = builder.info.features["label"].num_classes
  train = load("train")
  try:
    test = load("test")
  except ValueError:  # e.g. eurosat has one split only: a fixed 20% becomes the test split.
    order = np.random.default_rng(0).permutation(len(train["label"]))
    cut = len(order) // 5
    test = {key: value[order[:cut]] for key, value in train.items()}
    train = {key: value[order[cut:]] for key, value in train.items()}
  return train["image"], train["label"], test["image"], test["label"], num_classes


def _prepared_builder(name: str, data_dir: str | None):
  """A TFDS builder with its data prepared, or a UserError saying how to get it."""
  tfds = _import_tfds(name)
  builder = tfds.builder(name, data_dir=data_dir)
  if builder.is_prepared():
    return builder
  try:
    builder.download_and_prepare()
  except Exception as error:  # TFDS raises many kinds; all mean "not available here".
    hint = ("install Debian's package (apt-get install dataset-fashion-mnist) or "
            if name == "fashion_mnist" else "")
    raise UserError(
        f"dataset {name!r} is not prepared in {builder.data_dir} and could not be downloaded "
        f"({type(error).__name__}); {hint}run once with network access, or set "
        f"config.data.tfds_data_dir to a directory where it is prepared") from error
  return builder


def dataset_from_config(config) -> Dataset:
  """Loads the dataset described by ``config.data``."""
  data = config.data
  return load_dataset(data.name, validation_size=data.validation_size,
                      split_seed=data.split_seed, mean=tuple(data.channel_mean) or data.mean,
                      std=tuple(data.channel_std) or data.std,
                      image_size=data.image_size, train_examples=data.train_examples,
                      tfds_data_dir=data.tfds_data_dir or None, local_dir=data.local_dir)
