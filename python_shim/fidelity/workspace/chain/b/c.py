import chain

chain.ORDER.append("chain.b.c")
VALUE = "c"
