"""Evidence against training images, shared by the detectors, the verdict and the re-check: likeness to the test
image (:mod:`.likeness`), a stamp or texture shared with it (:mod:`.stamp`), and the relabelling by a model trained
without the suspects (:mod:`.relabel`). Nothing here reads ground truth or imports a detector."""
