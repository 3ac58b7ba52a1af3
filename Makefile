# Shortcuts for developers; the README's commands are the scripts themselves.
.PHONY: demo test schema

demo:
	./scripts/demo.sh

test:
	./scripts/test.sh

schema:
	.venv/bin/takt contract schema
