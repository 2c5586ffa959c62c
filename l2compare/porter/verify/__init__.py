"""``l2compare verify``: the Keras model's fit against its port, step by step (``runner``), its data,
its Keras and torch sides, the corpus of models and the showcase that ``make results`` runs."""
