"""The pipeline layer the Snakemake rules call: job entry points (stages), config
checks, result fingerprints, locks and job logs.
"""
