"""Sparsification methods as pure mask-update functions (work in progress).

This package holds the pieces the methods share: sparsity schedules
(:mod:`jaxsparse.sparsify.schedules`). Mask helpers (top-k masks, layer-wise
and global, sparsity counts) live in :mod:`jaxsparse.masks`.
"""
