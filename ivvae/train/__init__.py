"""Training: data, losses, discriminator, trainer."""
