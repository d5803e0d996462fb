"""``python -m jaxsparse.modelzoo import|export``: see :mod:`jaxsparse.modelzoo`."""

from __future__ import annotations

import argparse
import sys

from jaxsparse.errors import UserError


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="python -m jaxsparse.modelzoo",
      description="Import a published model zoo as a jaxsparse run, or export a run in the "
                  "zoos' layout.")
  commands = parser.add_subparsers(dest="command", required=True)
  importing = commands.add_parser(
      "import", help="a zoo directory of Ray Tune trials -> a jaxsparse run directory")
  importing.add_argument("source", help="the zoo's directory (one subdirectory per trial)")
  importing.add_argument("--workdir", required=True, help="the new run directory")
  importing.add_argument("--epoch", type=int, default=None,
                         help="the checkpoint epoch to import (default: the last one every "
                              "trial has)")
  importing.add_argument("--dataset", default="fashion_mnist",
                         help="the data the zoo was trained on, to evaluate its members "
                              "(default: fashion_mnist; the ResNet-18 zoos: cifar10, "
                              "cifar100 or tiny_imagenet)")
  importing.add_argument("--data_dir", default="",
                         help="tiny_imagenet: the tiny-imagenet-200 directory of the official "
                              "archive (TFDS lacks it)")
  importing.add_argument("--validation_size", type=int, default=10_000,
                         help="examples of the training split held out for validation "
                              "(default: 10,000, as the CIFAR zoos)")
  importing.add_argument("--no_evaluation", action="store_true",
                         help="do not evaluate the members (no data needed): members.csv "
                              "records evaluated=False and the zoo's own accuracies only")
  importing.add_argument("--skip_unreadable", action="store_true",
                         help="leave out trials that cannot be read (listed with the reason in "
                              "skipped_trials.csv) instead of refusing the import")
  exporting = commands.add_parser(
      "export", help="a jaxsparse run -> the zoos' layout, or flat arrays")
  exporting.add_argument("workdir", help="a run directory (a zoo, or twins/<method>)")
  exporting.add_argument("--out", required=True, help="the new directory to write")
  exporting.add_argument("--format", default="zoo", choices=("zoo", "arrays"),
                         help="'zoo': trial directories with PyTorch checkpoints; 'arrays': "
                              "weights.npy, masks.npy, index.json and members.csv")
  exporting.add_argument("--epoch", type=int, default=None,
                         help="--format=arrays: the checkpoint epoch (default: the last)")
  exporting.add_argument("--allow_method_module", action="append", default=[],
                         metavar="MODULE",
                         help="a module the run may import for its method, if you trust it "
                              "(loading a run never imports a module it names otherwise)")
  return parser


def main(argv: list[str] | None = None) -> int:
  """Runs the command; a :class:`UserError` is one line on stderr and exit status 2."""
  arguments = _parser().parse_args(argv)
  from jaxsparse import modelzoo  # after parsing: --help needs no JAX
  try:
    if arguments.command == "import":
      data = modelzoo.DataOptions(arguments.dataset, arguments.data_dir,
                                  arguments.validation_size)
      modelzoo.import_zoo(arguments.source, arguments.workdir, arguments.epoch, data,
                          skip_unreadable=arguments.skip_unreadable,
                          evaluate=not arguments.no_evaluation)
    else:
      modelzoo.export_run(arguments.workdir, arguments.out, arguments.format, arguments.epoch,
                          tuple(arguments.allow_method_module))
  except UserError as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
