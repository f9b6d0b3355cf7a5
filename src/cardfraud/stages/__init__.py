"""Pipeline stages, one module each.

Every stage module exposes ``run(ws, params) -> dict``: it reads its inputs from the
workspace, writes its outputs there and returns a JSON-serialisable summary that the
notebook shows and the command line prints. Stage modules only orchestrate; the
computation lives in the domain modules of the package.
"""
