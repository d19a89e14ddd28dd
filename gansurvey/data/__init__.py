"""Datasets: those that ship inside pip packages (:mod:`.bundled`: MNIST subset, toy 2-D mixtures, edges2digits)
and the user's own image folders in the pix2pix and CycleGAN layouts (:mod:`.folders`)."""
