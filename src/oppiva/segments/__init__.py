"""Segments: the criteria language, RFM, relationship classes, clusters, life-cycle stages."""
