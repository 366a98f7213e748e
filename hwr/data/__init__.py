"""The data layer: labelled images in, validated rows and model-ready arrays out.

``charset`` (text <-> CTC ids), ``labels`` (labels CSV, bad-input policy, splits), ``images``
(decoding and the one preprocessing shared with serving), ``dataset`` (a data set in memory for
training), ``pipeline`` (tf.data batches, augmentation), ``sources`` (images read lazily for
``predict``), ``pages`` (PAGE-XML and ALTO page files in and out, line cutting). Knows nothing of models or MLflow.
"""
