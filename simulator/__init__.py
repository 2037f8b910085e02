"""Simulated data for a site: past months written through the edge's own processing (``simulate``)."""
