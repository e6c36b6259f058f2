"""Checks per course module: ``mNN.py`` registers the exercises ``NN.*`` with ``@exercise``.

``check("03.1")`` imports ``rdslab.grading.checks.m03`` on first use.
"""
