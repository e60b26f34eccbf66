"""Training: tf.distribute strategy selection, supervised and GAN trainers, EMA, callbacks,
checkpoint/resume and the recipe runner (:func:`srkeras.training.runner.train`).

Imports TensorFlow; import the submodules you need.
"""
