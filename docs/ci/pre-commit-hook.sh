#!/usr/bin/env bash
# golf audit of the records folders staged for commit, as the commit will hold them (the index, not
# the work tree). Exit 1 stops the commit when an error-level finding holds; a commit that touches
# no records folder passes. Nothing of the submission is run.
#
# Install as a git hook:   cp docs/ci/pre-commit-hook.sh .git/hooks/pre-commit && chmod +x .git/hooks/pre-commit
# Skip it once:            git commit --no-verify
# GOLF (default: golf) is the command that runs the toolkit; GOLF_FAIL_ON=warning also stops on warnings.
set -u
GOLF=${GOLF:-golf}
exec $GOLF audit --staged --fail-on "${GOLF_FAIL_ON:-error}"
