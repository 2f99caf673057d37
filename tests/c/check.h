/* check.h - the assertion macros shared by the C unit tests (tests/c/test_*.c) and the
 * libFuzzer harness (tests/c/fuzz_http1.c).
 *
 * Contract
 * - Include it once per program: it defines the static counters `checks` (checks run) and
 *   `failures` (checks that failed), which the program reads to pick its exit status.
 * - CHECK(cond) and CHECK_MSG(cond, fmt, ...) evaluate cond once and never abort, so one run
 *   reports every failure. A failure prints "file:line: check failed: cond" to stderr, then
 *   ": " and the printf-style message for CHECK_MSG; the message arguments are evaluated only
 *   then. Only the first CHECK_MAX_REPORTS failures are printed (the fuzz loops would flood
 *   the log); all are counted.
 * - check_summary(name) prints the totals and returns the exit status: 0 when nothing failed,
 *   1 otherwise.
 */
#ifndef GW_TESTS_CHECK_H
#define GW_TESTS_CHECK_H

#include <stdio.h>

#define CHECK_MAX_REPORTS 60

static int failures, checks;

/* Counts one check; returns 1 when it failed and the caller should finish the report line. */
static int check_failed_(int ok, const char *file, int line, const char *cond)
{
    checks++;
    if (ok)
        return 0;
    failures++;
    if (failures > CHECK_MAX_REPORTS)
        return 0;
    fprintf(stderr, "%s:%d: check failed: %s", file, line, cond);
    return 1;
}

#define CHECK(cond)                                                 \
    do {                                                            \
        if (check_failed_(!!(cond), __FILE__, __LINE__, #cond))     \
            fputc('\n', stderr);                                    \
    } while (0)

#define CHECK_MSG(cond, ...)                                        \
    do {                                                            \
        if (check_failed_(!!(cond), __FILE__, __LINE__, #cond)) {   \
            fputs(": ", stderr);                                    \
            fprintf(stderr, __VA_ARGS__);                           \
            fputc('\n', stderr);                                    \
        }                                                           \
    } while (0)

static inline int check_summary(const char *name)
{
    if (failures) {
        fprintf(stderr, "%s: %d of %d checks failed\n", name, failures, checks);
        return 1;
    }
    printf("%s: all %d checks passed\n", name, checks);
    return 0;
}

#endif
