Y = "y"
PACKAGE = __package__
