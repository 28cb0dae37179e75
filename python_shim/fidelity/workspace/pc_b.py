from pc_a import A

B = "b"
