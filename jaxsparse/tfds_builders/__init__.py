"""TFDS dataset builders that jaxsparse adds (imported lazily: importing TFDS is slow)."""
