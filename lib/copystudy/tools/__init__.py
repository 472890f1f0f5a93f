"""Tools that work outside the notebooks: compress a file with a run's LM, Shapley values of your own game."""
