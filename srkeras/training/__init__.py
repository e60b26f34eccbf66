"""Training: tf.distribute strategy selection, supervised and GAN trainers, EMA, callbacks,
checkpoint/resume and the recipe runner (:func:`srkeras.training.runner.train`), which reads its
recipe through :class:`srkeras.recipes.Recipe`.

Imports TensorFlow; import the submodules you need.
"""
