"""Training: data path from the image cache, the loop, run folders, checkpoints."""
