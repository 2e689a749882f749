"""Benchmarks: s3repo against plain boto3, s5cmd (or hashlib, or a Python set), side by side.

``python3 dev.py bench`` (``python -m bench``) starts its own S3 servers on 127.0.0.1,
runs every case of :mod:`bench.cases` for our code and its baseline alternately, each
repetition in a fresh worker process (:mod:`bench.worker`), and writes the medians, the
ratio ours/baseline and peak memory to ``BENCHMARKS.md`` (:mod:`bench.report`).
Benchmarks never run in the test suite; ``--smoke`` (tiny sizes, one worker process per
server) keeps this code working.
"""
