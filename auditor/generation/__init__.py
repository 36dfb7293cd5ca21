"""Generation: the reference generators every audit is compared against.

`baselines` is the pure-torch library (DCGAN, conditional DCGAN, VAE; no Django). Entry point of the service:
`auditor.generation.runs.train_generator` (run by the `auditor.train_generator` task in `tasks`), then
`sample_to_image_set` to turn a trained run into a baseline image set; `make_copy_baseline` builds the exact-copy
control set.
"""
