"""Shapley royalty shares: Shapley values and their estimators, the coalition game of owners and its utility."""
