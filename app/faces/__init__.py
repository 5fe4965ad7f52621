"""Face pipeline: image decoding (`images`), face engines (`engine`) and matching (`matching`).

Only `engine.LocalDlibEngine` touches dlib, and only when it first analyses an image.
"""
