# octo_ros: `make test` (set-up + test suite) and, later, `make demo`.
.PHONY: setup test demo

PY := .venv/bin/python

setup:
	@bash tools/bootstrap.sh

# pytest exits 5 when it collected no test: that is a failure here, not a pass.
test: setup
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# The main job: the full graph on the simulated bimanual robot, recorded, with a summary.
demo: setup
	@MUJOCO_GL=egl $(PY) -m octo_ros.cli demo $(DEMO_ARGS)
