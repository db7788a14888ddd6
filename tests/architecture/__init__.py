"""The shape of the code, as a checked contract: layers, cycles, literal error codes."""
