"""CRNN training: config, Monte-Carlo splits and batches, pure steps, the train/evaluate loop."""
