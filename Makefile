# The two commands a user needs: `make train` and `make test`. Both set up what is missing first.
.PHONY: setup train test

setup: node_modules/.installed .venv/.installed

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

.venv/.installed: engine/pyproject.toml scripts/setup-python.sh
	bash scripts/setup-python.sh
	touch $@

train: setup
	node bin/rl2048.js train $(ARGS)

test: setup
	npm test
