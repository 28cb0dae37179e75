class X:
    pass


PACKAGE = __package__
