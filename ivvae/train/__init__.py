"""Training: config schema, what a config builds (model, data), losses, discriminator, the trainer loop."""
