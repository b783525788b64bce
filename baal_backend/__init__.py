"""The engine of the Label Studio ML backend: Bayesian active learning for text classification."""
