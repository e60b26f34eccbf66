"""Evaluation throughput (HR megapixels/s) of the NumPy and TensorFlow paths.

    python -m benchmarks.bench_evaluate [--repeats 3] [--json out.json]

Workload: the eight scikit-image photos (about 4.4 MP in all), MATLAB bicubic x4 down and up, then
PSNR+SSIM on Y. Reported separately for ``imresize`` alone (NumPy vs TF inside ``tf.data``; the
goal is TF no slower than 2x NumPy) and for the whole evaluation: the protocol of
:mod:`srkeras.evaluation` (8-bit LR and SR, Y rounded to 8 bits) in NumPy, and its TF twin (8-bit
LR, then the Keras metric functions, which quantise SR themselves on 8-bit HR images).
"""

from __future__ import annotations

import argparse
import json
import os
import time


def _best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from srkeras import evaluation
    from srkeras.data import imresize, imresize_tf
    from srkeras.data.samples import sample_images
    from srkeras.metrics import psnr_batch, ssim_batch

    s = args.scale
    imgs = [evaluation.prepare(v, s).hr for v in sample_images().values()]  # mod-cropped, 8-bit
    mp = sum(i.shape[0] * i.shape[1] for i in imgs) / 1e6

    def np_resize():
        for hr in imgs:
            imresize(imresize(hr, 1 / s), s)

    def np_eval():
        for hr in imgs:
            pair = evaluation.prepare(hr, s)
            evaluation.score(evaluation.classical_sr(pair.lr, s), pair.hr, s)

    spec = tf.TensorSpec((None, None, 3), tf.float32)
    base = tf.data.Dataset.from_generator(lambda: iter(imgs), output_signature=spec).cache()
    for _ in base:  # fill the cache so decoding is not timed
        pass
    resize_ds = base.map(lambda x: imresize_tf(imresize_tf(x, 1 / s), s), num_parallel_calls=tf.data.AUTOTUNE)

    @tf.function(reduce_retracing=True)
    def tf_scores(hr, sr):
        hr, sr = hr[None], tf.clip_by_value(sr, 0.0, 1.0)[None]
        return psnr_batch(hr, sr, s), ssim_batch(hr, sr, s)

    def tf_protocol(x):  # 8-bit LR, as evaluation.prepare stores it; SR is quantised by the metrics
        lr = tf.round(tf.clip_by_value(imresize_tf(x, 1 / s), 0.0, 1.0) * 255.0) / 255.0
        return x, imresize_tf(lr, s)

    eval_ds = base.map(tf_protocol, num_parallel_calls=tf.data.AUTOTUNE)

    def tf_resize():
        for _ in resize_ds:
            pass

    def tf_eval():
        for hr, sr in eval_ds:
            tf_scores(hr, sr)

    tf_resize(), tf_eval()  # trace once
    rows = {
        "imresize_numpy": _best_of(np_resize, args.repeats),
        "imresize_tf_data": _best_of(tf_resize, args.repeats),
        "evaluate_numpy": _best_of(np_eval, args.repeats),
        "evaluate_tf": _best_of(tf_eval, args.repeats),
    }
    print(f"workload: {len(imgs)} photos, {mp:.2f} HR megapixels, x{s} down+up, {os.cpu_count()} CPU cores")
    print(f"{'path':<20}{'seconds':>10}{'HR MP/s':>10}")
    for k, t in rows.items():
        print(f"{k:<20}{t:>10.3f}{mp / t:>10.2f}")
    ratio = rows["imresize_tf_data"] / rows["imresize_numpy"]
    verdict = "OK" if ratio <= 2.0 else "TOO SLOW"
    print(f"tf.data imresize time / NumPy imresize time = {ratio:.2f} (goal <= 2.0: {verdict})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"megapixels": mp, "seconds": rows, "tf_over_numpy": ratio}, f, indent=2)
    return 0 if ratio <= 2.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
