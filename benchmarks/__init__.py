"""Benchmark suite: symgrad's emitted kernels against hand-written numpy and autodiff frameworks."""
