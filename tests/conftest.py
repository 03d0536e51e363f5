import os
import sys

# Tests import their NumPy twins from tests/reference.py.
sys.path.insert(0, os.path.dirname(__file__))
