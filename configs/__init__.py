"""The bundled training configs, ``get_config()`` files installed with mer-jax.

Every command that takes ``--config`` accepts a file path (``configs/small.py``, or your own file)
or the bare name of a bundled config (``--config paper``, ``--config small``), so a batch node
that installed mer-jax as a wheel (``pip install .``) needs no checkout.
"""
