"""item01: `import chain.b.c` must bind chain.b and chain.b.c on their parents."""
ORDER = ["chain"]
