"""Neural-network pieces: distances, bias, attention, blocks, likelihoods, models."""
