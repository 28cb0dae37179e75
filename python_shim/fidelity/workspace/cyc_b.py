import cyc_a

SAW_A_AT_IMPORT = hasattr(cyc_a, "A")
B = "b"


def a_value():
    return cyc_a.A
