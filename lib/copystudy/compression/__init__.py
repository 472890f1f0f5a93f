"""Training as compression, the measuring side: range coding with a model, classical compressors, rates, code lengths."""
