"""Deep Learning from Scratch."""
