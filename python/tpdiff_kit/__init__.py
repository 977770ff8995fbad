"""TPDiff's Python kit: latent packages and stage-wise fine-tuning of PyTorch models."""
