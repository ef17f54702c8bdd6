"""Job environments: requirement sets from conda files, curated names and registered environments
(:mod:`.resolve`), checked (:mod:`.requirement_rules`), built as cached venvs layered over the running
interpreter (:mod:`.venv_cache`) or run in containers where a Docker engine answers (:mod:`.containers`)."""
