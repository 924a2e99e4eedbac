"""The benchmark suite: ``python -m bench`` measures ceilings and the service in one run.

See ``bench/suite.py`` for the phases (A to H) and README's "Performance" section for the
latest figures.
"""
