"""Commentary about the music as it is played: a conditional VAE (``models/cvae.py``) steered by an
LC-GAN (``models/lcgan.py``), fed with attributes measured from the notes (``attributes.py``)."""
