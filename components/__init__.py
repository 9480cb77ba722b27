"""KFP v2 lightweight components: each is a thin shell over one `fraud.jobs` step.

Every step runs on the project image (``FRAUD_IMAGE``, set on each task when the pipeline is built), which
already holds `fraud` and its dependencies, so nothing is pip-installed per run, and the same code runs under
`kfp.local` and on a cluster.
"""
