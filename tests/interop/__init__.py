"""The opt-in interoperability suite: sigla against real servers (see conftest.py, run.sh).

A package, so its conftest does not shadow tests/conftest.py, which test modules import.
"""
