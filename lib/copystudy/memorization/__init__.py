"""When do the weights hold a reconstructable copy: extraction, distances, canaries, memorised bits, the risk map."""
