from ... import anything  # one level too many: an ImportError, as on disk
