"""File formats as plain functions: N-MNIST (tonic), AEDAT4 (dv-processing), Prophesee EVT (expelliarmus), AEDAT 2.0."""
