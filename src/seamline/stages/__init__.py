"""Pipeline stages that run after the response: validate (contracts) and record (event building)."""
