"""One delivery: claim, the provider call, its outcome, back-off, lost replies and balance shortfalls."""
