"""TPDiff kit: the method, the reference sampler and the exporter for latent model packages."""
