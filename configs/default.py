"""The main job (``make run``): a CNN-s zoo on Fashion-MNIST and its sparsified twins.

The zoo: 16 members, a corner of the public hyperparameter zoo's grid
(configs/zoo_hyperparameter.py; docs/twins.md) with its recipe: 4 activations
x 2 of the zoo's initializers (``uniform`` = U(0, 1) and ``kaiming_uniform``,
the zoo's torch.nn.init defaults; biases 0.01) x 2 seeds, Adam 1e-3, no
weight decay or dropout, batch 10, 5 epochs (the zoo trains 50). Its twins,
every level of a method in ONE population: magnitude pruning at 50, 80, 90 and
95 %, layer-wise and global (one-shot at the start of fine-tuning; gradual
was measured against it: docs/twins.md), and sparse variational dropout at 4
KL weights chosen to span about 50 to 90 % sparsity, with the public code's
clip of log alpha and with a straight-through one (the public clip stops
short of 90 % on this zoo: docs/results.md); each fine-tuned for 10
epochs on 2,500 training examples at batch 10. Then the report (report.md
with the claims table, summary.json, figures/). Sized to finish within 15
minutes on 2 CPU cores from a fresh clone; configs/twins_paper.py is the
paper's scale.
"""

from jaxsparse.config import default_config


def get_config():
  config = default_config()
  config.job = "twins"
  config.model.name = "cnn_s"
  config.data.name = "fashion_mnist"
  grid = config.population.grid
  grid.activation = ("tanh", "relu", "sigmoid", "gelu")
  grid.initializer = ("uniform", "kaiming_uniform")
  grid.optimizer = ("adam",)
  grid.learning_rate = (1e-3,)
  config.population.num_seeds = 2
  # 5 epochs, not 1: a 1-epoch zoo (test accuracy 0.58) is so far from trained
  # that fine-tuning went on training it and "robust" partly meant "trained
  # longer" (docs/results.md). 3 epochs gave 0.69; with a block of members per
  # CPU core the minutes left after the twins' 10 epochs (below) went here.
  config.training.num_epochs = 5
  config.training.batch_size = 10
  # Members vmapped 4 at a time (the fastest chunk for CNN-s on the CPU:
  # docs/benchmarks.md). The grid puts each activation's 4 members (2 inits x 2
  # seeds) next to each other, so every chunk shares its activation and
  # computes only that one.
  config.population.chunk_size = 4
  # Test predictions in batches of 100 per member: the twins' 64 x 10,000 took
  # 21 to 28 s against 34 to 39 s in batches of 1,000 (docs/benchmarks.md).
  config.training.eval_batch_size = 100
  # Fine-tuning curves on the first 2,000 test examples; the last epoch of every
  # run evaluates all 10,000 (a twin population's full test pass costs more
  # than its fine-tuning epoch).
  config.training.curve_test_examples = 2_000

  config.twins.methods = ("magnitude", "variational_dropout",
                          "variational_dropout_straight_through")
  config.twins.scopes = ("layerwise", "global")
  config.twins.sparsities = (0.5, 0.8, 0.9, 0.95)
  # Chosen to span about 50 to 90 % mean sparsity (the claims' range), by the
  # sparsity each reached on this zoo (docs/results.md): on the 3-epoch zoo after 3
  # fine-tuning epochs 10 gave 39 %, 30 59 %, 300 83 %, 3,000 88 %, 10^5 88 %; with
  # 5 epochs 30 gave 67 %, 300 86 %, 10^5 89 %. Sparsity saturates near 89 % at this
  # budget: under Adam a dominating KL term's scale stops mattering (10^6 to 10^8
  # trained identical twins), so no weight reaches 90 %. With the 5-epoch zoo and 10
  # fine-tuning epochs, 10 / 30 / 300 / 10^5 reached 59 / 73 / 87 / 88 %: by the same
  # rule (span about 50 to 90 %), 300 (next to 10^5) gave way to 5, log-interpolated
  # between 3 (39 %) and 10 (60 %) of the 12-epoch sweep (docs/results.md).
  config.twins.kl_weights = (5.0, 10.0, 30.0, 100000.0)
  # With the public clip no KL weight reaches 90 % here: the zoo's U(0, 1)
  # convolution weights start at log alpha's lower clip, out of the KL term's
  # reach (docs/results.md). So the job also makes VD twins whose clip passes
  # gradients straight through, a labelled departure from the public code, at
  # the same three lower KL weights (a paired comparison of the clips) and 100,
  # which reached 95 % on this zoo (30 reached 77 %, 300 99 %).
  config.twins.straight_through_kl_weights = (5.0, 10.0, 30.0, 100.0)
  # 10 epochs: after 5, magnitude twins at 80 to 90 % still gained 0.01 to 0.05 per
  # epoch (the convergence figure of the 2026-11-24 11:35 run), while VD twins had
  # levelled off. The job is sized to about 11 minutes here (11 min 1 s from a fresh
  # clone of 11d7c62, docs/results.md), so that an hour 30 %
  # slower (docs/benchmarks.md) stays within 15.
  config.twins.num_epochs = 10
  config.twins.train_examples = 2_500
  # Magnitude twins are pruned once at the start of fine-tuning; VD warms its
  # KL term up over the first fine-tuning epoch, with its log sigma^2 learning
  # 30x faster than the weights (from -10, it would barely move in 1,250 steps).
  config.sparsify.schedule = "one_shot"
  config.sparsify.start_epoch = 0
  config.sparsify.end_epoch = 1
  config.sparsify.trainable_learning_rate_scale = 30.0
  return config
