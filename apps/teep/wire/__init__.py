"""TEEP, COSE, SUIT and EAT wire formats: plain Python, no Django import anywhere below here."""
