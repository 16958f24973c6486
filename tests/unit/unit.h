/* unit.h: helpers shared by the cmocka unit tests. Include after <cmocka.h>. */
#ifndef PGENRICH_UNIT_H
#define PGENRICH_UNIT_H

#include <math.h>

/* Fail unless a is within eps of b, printing both with full precision. */
#define assert_near(a, b, eps)                                                                     \
    do {                                                                                           \
        double got_ = (a), want_ = (b);                                                            \
        if (!(fabs(got_ - want_) <= (eps))) {                                                      \
            print_error("%.17g is not within %g of %.17g\n", got_, (double)(eps), want_);          \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

#endif
