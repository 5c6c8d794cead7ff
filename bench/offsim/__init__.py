"""The offload simulator's parts; bench/offload_sim.py is its command line."""
