"""The parts the applications share. Not the library: built on it, and never imported by it.

The applications are ``jgd tour`` (``jgd.tour``), ``jgd bench`` (``jgd.bench``) and the ``jgd``
command (``jgd.cli``). What more than one of them runs lives here:

- ``jgd.apps.compare``: the one jgd-vs-PyTorch comparison (``Race``: the same init, the same
  batches, both sides warm), behind ``jgd compare-torch``, the tour's PyTorch section and
  ``jgd bench train``'s torch contenders;
- ``jgd.apps.train``: ``jgd train``'s run, the seeds' MLP on MNIST (progress, per-epoch accuracy,
  checkpoints, a model file).
"""
