"""Face pipeline: image decoding (`images`), the local engine (`engine`, with `detectors`,
`recognizers` and their model files in `weights`), providers and matching (`matching`), the
face tables and their queries (`models`, `service`), and erasures at a remote provider (`jobs`).

OpenCV and dlib are imported only when a detector or recognizer first loads its model.
"""
