"""Reading and writing the published model zoos (Schürholt et al. 2022; modelzoos.cc).

- :func:`import_zoo`: a zoo directory of Ray Tune trials (PyTorch checkpoints)
  becomes an ordinary jaxsparse run, evaluated here; the twins study starts
  from it with ``config.twins.original_workdir``.
- :func:`export_run`: a jaxsparse run (a zoo or twins) in the same layout
  (``format='zoo'``), or as one flat weights array with a table
  (``format='arrays'``).

From the shell: ``python -m jaxsparse.modelzoo import SOURCE --workdir=OUT``
and ``python -m jaxsparse.modelzoo export WORKDIR --out=DIR``. PyTorch is an
optional extra (``pip install -e '.[modelzoo]'``); checkpoints are read with
``weights_only=True``. See docs/modelzoo.md.
"""

from jaxsparse.modelzoo.exporter import FORMATS, export_run
from jaxsparse.modelzoo.importer import DataOptions, import_zoo, read_trials
from jaxsparse.modelzoo.layout import ARCHITECTURES

__all__ = ["ARCHITECTURES", "DataOptions", "FORMATS", "export_run", "import_zoo",
           "read_trials"]
