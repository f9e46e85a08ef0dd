"""Regenerates tf_resize_golden.npz (needs TensorFlow; run in a throwaway venv, e.g. tensorflow-cpu==2.18.0).

Not a test and not imported by the tests: the tests only read the .npz it writes.
"""
import numpy as np
import tensorflow as tf

rs = np.random.RandomState(1234)
out = {}
specs = [("a", (60, 80), (32, 32)), ("b", (45, 70), (24, 24)), ("c", (20, 30), (40, 40))]
for name, (h, w), size in specs:
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(127 + 120*np.sin(xx/5.0+c)*np.cos(yy/7.0-c)) for c in range(3)], -1)
    img = np.clip(img + rs.randn(h, w, 3)*20, 0, 255).astype(np.uint8)
    f = tf.image.resize(img, size=size, method="lanczos3", antialias=True)
    nh = tf.clip_by_value(tf.sqrt(0.9), 0, 1); ho = (1-nh)/2
    box = tf.stack([ho, ho, ho+nh, ho+nh])
    c = tf.image.crop_and_resize(f[None], box[None], [0], size)[0]
    out[name+"_input"] = img
    out[name+"_lanczos_f32"] = f.numpy()
    out[name+"_u8"] = tf.cast(tf.clip_by_value(tf.round(f), 0, 255), tf.uint8).numpy()
    out[name+"_u8_crop"] = tf.cast(tf.clip_by_value(tf.round(c), 0, 255), tf.uint8).numpy()
out["box"] = box.numpy()
out["tf_version"] = np.array(tf.__version__)
np.savez_compressed(__import__("os").path.join(__import__("os").path.dirname(__file__), "tf_resize_golden.npz"), **out)
