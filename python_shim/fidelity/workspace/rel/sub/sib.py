SIB = "sib"
PACKAGE = __package__
