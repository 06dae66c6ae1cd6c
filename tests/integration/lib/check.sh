# Shared by the shell integration tests: `check NAME COMMAND...` runs one case and counts
# it; `check_summary` prints the closing "N passed, M failed" line and sets the exit
# status. A test may define check_on_failure() to show context (e.g. a log) on failure.
passed=0
failed=0

check() { # name, command...
    local name=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
        echo "ok: $name"
    else
        failed=$((failed + 1))
        echo "FAILED: $name"
        if declare -F check_on_failure >/dev/null; then check_on_failure; fi
    fi
}

check_summary() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
