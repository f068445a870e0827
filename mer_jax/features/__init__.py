"""Model inputs computed once at preprocessing: STFT spectrograms (CRNN) and openSMILE (RF)."""
