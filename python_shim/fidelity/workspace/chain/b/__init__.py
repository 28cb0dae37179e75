import chain

chain.ORDER.append("chain.b")
