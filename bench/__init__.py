"""Benchmarks that measure robotrl against its peers in the same process (``python -m bench.<name>``).

Each writes ``bench/results/<name>.json`` through :func:`bench.common.write_result`; the table in
``bench/RESULTS.md`` is regenerated from all of those files (``python -m bench.make_table``).
"""
