"""Training: tf.distribute strategy selection, supervised and GAN trainers, EMA, callbacks,
checkpoint/resume and the recipe runner (:func:`srkeras.training.runner.train`), which reads its
recipe through :class:`srkeras.recipes.Recipe`; multi-worker clusters (:mod:`.cluster`) and the
local launcher of ``--workers N`` (:mod:`.launcher`); the training run of ``pipelines.train`` (sources,
run, final table: :mod:`.job`).

Imports TensorFlow; import the submodules you need.
"""
