"""Training: the shared loop, CTC fine-tuning and UniSpeech pretraining."""
