"""Helpers every experiment shares: data that ships with the dependencies, intervals, parallel tasks, the model cache, reports."""
