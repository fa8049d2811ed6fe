"""The runner: plan -> units of work -> executor and backends -> results store, with the
shared pretraining cache. Above datasets and methods, below reports and the CLI.
"""
