"""Archive page formats: page scans with PAGE-XML or ALTO beside them, in and out.

``layout`` (the lines of a page, format-free), ``pagexml`` and ``alto`` (reading a page file,
writing transcriptions back into it), ``formats`` (detecting the format of a folder, validating
against the shipped XSDs), ``cutting`` (OpenCV: a line's polygon -> a line image) and ``lines``
(a folder of pages -> cut line images and a labels CSV, cached on disk). Knows nothing of models
or MLflow.
"""
