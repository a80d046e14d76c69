"""Presentation: text tables and summaries of typed results; no measuring here."""
