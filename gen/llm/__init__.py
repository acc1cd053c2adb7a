"""The spiking operators inside real Transformers (torch and transformers are imported here only)."""
