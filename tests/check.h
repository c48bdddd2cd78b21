/* check.h: the tiny test harness (after Redis's testhelp.h).
 * CHECK(cond) reports file:line and the expression on failure and counts; each test program
 * ends with CHECK_DONE(), which prints "N passed, N failed" and returns the exit status. */
#ifndef PDR_CHECK_H
#define PDR_CHECK_H
#include <stdio.h>

static int check_passed, check_failed;

#define CHECK(cond) \
    do { \
        if (cond) { \
            check_passed++; \
        } else { \
            check_failed++; \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        } \
    } while (0)

/* CHECK with a printf-style explanation of the values involved. */
#define CHECKF(cond, ...) \
    do { \
        if (cond) { \
            check_passed++; \
        } else { \
            check_failed++; \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__); \
            fputc('\n', stderr); \
        } \
    } while (0)

#define TEST(name) static void name(void)
#define RUN(name) \
    do { \
        fprintf(stderr, "-- %s\n", #name); \
        name(); \
    } while (0)

#define CHECK_DONE() (printf("%d passed, %d failed\n", check_passed, check_failed), check_failed ? 1 : 0)

#endif
