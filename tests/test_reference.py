"""The docs' generated parts (every config field, every method) match the declarations."""

from jaxsparse import reference


def test_generated_docs_are_current():
  assert reference.stale_files() == [], "run: python -m jaxsparse.reference"


def test_every_field_and_method_is_documented():
  text = reference.config_reference()
  for name in ("`job`", "`population.grid.learning_rate`", "`sparsify.kl_weight`",
               "`twins.kl_weights`", "`population.method_grid.kl_weight`",
               "`logging.progress`"):
    assert name in text, name
  assert "(read by variational_dropout, variational_dropout_straight_through)" in text
  methods = reference.methods_table()
  from jaxsparse import sparsify
  assert all(f"| `{name}` |" in methods for name in sparsify.method_names())
  assert all(spec.summary for spec in sparsify.declarations())
