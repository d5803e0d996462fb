"""TFDS's own Fashion-MNIST builder, fed from Debian's ``dataset-fashion-mnist``.

Debian ships the four original IDX files re-gzipped (same images, gzip headers
without the file names), so their archive checksums differ from the ones TFDS
registered for the upstream downloads and TFDS refuses them. This subclass
changes nothing but the registered checksums (``checksums.tsv`` beside this
file, those of Debian's files); examples, features and splits come from TFDS's
``fashion_mnist`` builder unchanged. It is prepared with
``DownloadConfig(manual_dir=...)`` (see :mod:`jaxsparse.data`) and needs no network.
"""

import tensorflow_datasets as tfds


class FashionMnistDebian(tfds.image_classification.FashionMNIST):
  """Fashion-MNIST (TFDS builder ``fashion_mnist_debian``) from Debian's files."""
