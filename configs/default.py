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
short of 90 % on this zoo: docs/results.md, section 4); each fine-tuned for 10
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
  # longer" (docs/history/results-2026-11.md). 3 epochs gave 0.69; with a block of members per
  # CPU core the minutes left after the twins' 10 epochs (below) went here.
  config.training.num_epochs = 5
  config.training.batch_size = 10
  # Members vmapped 4 at a time (the fastest chunk for CNN-s on the CPU:
  # docs/history/benchmarks-2026-11.md). The grid puts each activation's 4 members (2 inits x 2
  # seeds) next to each other, so every chunk shares its activation and
  # computes only that one.
  config.population.chunk_size = 4
  # Test predictions in batches of 100 per member: the twins' 64 x 10,000 took
  # 21 to 28 s against 34 to 39 s in batches of 1,000 (docs/history/benchmarks-2026-11.md).
  config.training.eval_batch_size = 100
  # Fine-tuning curves on the first 2,000 test examples; the last epoch of every
  # run evaluates all 10,000 (a twin population's full test pass costs more
  # than its fine-tuning epoch).
  config.training.curve_test_examples = 2_000

  config.twins.methods = ("magnitude", "variational_dropout",
                          "variational_dropout_straight_through")
  config.twins.scopes = ("layerwise", "global")
  config.twins.sparsities = (0.5, 0.8, 0.9, 0.95)
  # Four KL weights per clip, by a rule fixed before reading accuracies: 5, 10 and 30 (both
  # clips, a paired comparison; 30 is next to the public code's w = 0.01 at this data size,
  # kl_weight = 0.01 x 2,500 = 25), then the lowest weight whose twins reach 90 % mean
  # sparsity or, where none does, the lowest within 0.005 of the sweep's highest. The
  # sweep on this zoo recipe with the protocol below (docs/results.md, section 4):
  # public clip 5 / 10 / 30 / 100 / 300 / 1,000 -> 55 / 65 / 77 / 83 / 84.4 / 84.7 %
  # (no weight reaches 90 %: the zoo's U(0, 1) convolution weights start at log alpha's
  # lower clip, where the public clip passes no gradient); straight-through clip
  # 5 / 10 / 30 / 100 / 300 -> 60 / 74 / 89 / 97 / 99 %.
  config.twins.kl_weights = (5.0, 10.0, 30.0, 300.0)
  # The straight-through clip (same values and masks, gradients pass) is a labelled
  # departure from the public code, made so that the claims above 80 % are tested past 90 %.
  config.twins.straight_through_kl_weights = (5.0, 10.0, 30.0, 100.0)
  # 10 epochs: after 5, magnitude twins at 80 to 90 % still gained 0.01 to 0.05 per epoch
  # (docs/history/results-2026-11.md). The job is sized to about 11 minutes on 2 cores, so
  # that an hour 30 % slower stays within 15.
  config.twins.num_epochs = 10
  config.twins.train_examples = 2_500
  # Magnitude twins are pruned once at the start of fine-tuning. VD follows the public
  # code's protocol but for its length (10 epochs on 2,500 examples, not 25 on 50,000):
  # one learning rate for every parameter, log sigma^2 included, and the KL weight set
  # once per epoch to kl_weight x epoch / 10 (0 in the first epoch), as the public
  # min(1, 0.01 x epoch / 25). Until 2026-12-05 log sigma^2 learned 30x faster and the KL
  # weight warmed up within the first epoch; the ablation (docs/results.md, section 3)
  # showed that the 30x rate alone made VD lose to magnitude pruning above 80 %: with one
  # rate VD ties it there layer-wise and beats it globally.
  config.sparsify.schedule = "one_shot"
  config.sparsify.start_epoch = 0
  config.sparsify.end_epoch = 10
  config.sparsify.kl_schedule = "per_epoch"
  config.sparsify.trainable_learning_rate_scale = 1.0
  return config
