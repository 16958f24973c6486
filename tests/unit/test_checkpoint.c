/* Unit tests for checkpoint: in-order, reverse and random settling checked against a
 * naive model, the window edges, refusals, a non-zero start and many wrap-arounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "checkpoint.h"

/* A fixed-seed generator, so every run settles in the same order. */
static uint64_t rng_state;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static size_t rng_below(size_t n)
{
    return (size_t)(rng_next() % n);
}

static void shuffle(uint64_t *a, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = rng_below(i);
        uint64_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

/* After a full advance the ring holds no stale bits. */
static void assert_ring_clear(const Ckpt *c)
{
    for (size_t i = 0; i < (c->cap + 7) / 8; i++)
        assert_int_equal(c->bits[i], 0);
}

static void test_init(void **state)
{
    (void)state;
    Ckpt c;
    assert_false(ckpt_init(&c, 0, 0)); /* an empty window is useless */
    ckpt_free(&c);                     /* and safe to free */
    assert_true(ckpt_init(&c, 42, 10));
    assert_int_equal(ckpt_low(&c), 42);
    assert_true(ckpt_in_window(&c, 42));
    ckpt_free(&c);
    assert_null(c.bits);
    assert_false(ckpt_in_window(&c, 42)); /* a freed tracker accepts nothing */
    assert_false(ckpt_settle(&c, 42));
}

static void test_in_order(void **state)
{
    (void)state;
    Ckpt c;
    assert_true(ckpt_init(&c, 0, 8));
    for (uint64_t s = 0; s < 100; s++) {
        assert_true(ckpt_settle(&c, s));
        assert_int_equal(ckpt_low(&c), s + 1);
    }
    assert_ring_clear(&c);
    ckpt_free(&c);
}

static void test_reverse_order(void **state)
{
    (void)state;
    const size_t caps[] = {1, 7, 8, 9, 64, 1000};
    for (size_t k = 0; k < ARRAY_LEN(caps); k++) {
        size_t cap = caps[k];
        Ckpt c;
        assert_true(ckpt_init(&c, 5, cap));
        for (int round = 0; round < 3; round++) {
            uint64_t base = ckpt_low(&c);
            for (size_t i = cap; i-- > 1;) {
                assert_true(ckpt_settle(&c, base + i));
                assert_int_equal(ckpt_low(&c), base); /* the oldest still holds it */
            }
            assert_true(ckpt_settle(&c, base));
            assert_int_equal(ckpt_low(&c), base + cap); /* then it jumps the whole window */
            assert_ring_clear(&c);
        }
        ckpt_free(&c);
    }
}

static void test_window_edges(void **state)
{
    (void)state;
    Ckpt c;
    assert_true(ckpt_init(&c, 100, 10));
    assert_false(ckpt_in_window(&c, 99));
    assert_true(ckpt_in_window(&c, 100));
    assert_true(ckpt_in_window(&c, 109));
    assert_false(ckpt_in_window(&c, 110));
    assert_false(ckpt_in_window(&c, UINT64_MAX));
    assert_false(ckpt_in_window(&c, 0));
    assert_false(ckpt_settle(&c, 110));
    assert_false(ckpt_settle(&c, UINT64_MAX));
    assert_true(ckpt_settle(&c, 109)); /* the last slot */
    assert_int_equal(ckpt_low(&c), 100);
    assert_true(ckpt_settle(&c, 100));
    assert_int_equal(ckpt_low(&c), 101);
    /* The window slid by one. */
    assert_false(ckpt_in_window(&c, 100));
    assert_true(ckpt_in_window(&c, 110));
    assert_false(ckpt_in_window(&c, 111));
    ckpt_free(&c);
}

static void test_refusals_change_nothing(void **state)
{
    (void)state;
    Ckpt c;
    assert_true(ckpt_init(&c, 0, 16));
    assert_true(ckpt_settle(&c, 0));
    assert_true(ckpt_settle(&c, 5));
    assert_false(ckpt_settle(&c, 0));  /* below the watermark */
    assert_false(ckpt_settle(&c, 5));  /* settled twice */
    assert_false(ckpt_settle(&c, 17)); /* past the window */
    assert_int_equal(ckpt_low(&c), 1);
    /* The refusals did not disturb the state: settling the rest still works. */
    for (uint64_t s = 1; s < 5; s++)
        assert_true(ckpt_settle(&c, s));
    assert_int_equal(ckpt_low(&c), 6);
    assert_true(ckpt_in_window(&c, 21));
    assert_false(ckpt_in_window(&c, 22));
    ckpt_free(&c);
}

static void test_large_start(void **state)
{
    (void)state;
    Ckpt c;
    const uint64_t start = UINT64_MAX - 1000;
    assert_true(ckpt_init(&c, start, 64));
    assert_false(ckpt_in_window(&c, start - 1));
    assert_true(ckpt_in_window(&c, start + 63));
    assert_false(ckpt_in_window(&c, start + 64));
    for (uint64_t i = 0; i < 500; i++)
        assert_true(ckpt_settle(&c, start + (i ^ 1))); /* pairs swapped */
    assert_int_equal(ckpt_low(&c), start + 500);
    ckpt_free(&c);
}

/*
 * The main check: a dispatcher that keeps up to `cap` sequence numbers in flight and
 * completes them in random order, compared step by step with a naive model that
 * remembers every settled number and scans for the first gap.
 */
static void run_random(size_t cap, uint64_t start, size_t total, uint64_t seed)
{
    rng_state = seed;
    Ckpt c;
    assert_true(ckpt_init(&c, start, cap));
    bool *settled = calloc(total, sizeof *settled); /* the model, indexed by seq - start */
    uint64_t *flight = malloc(cap * sizeof *flight);
    assert_non_null(settled);
    assert_non_null(flight);
    size_t nflight = 0, next = 0, model_low = 0;

    while (model_low < total) {
        bool can_dispatch = next < total && ckpt_in_window(&c, start + next);
        /* The model says the same about the window. */
        assert_int_equal(can_dispatch, next < total && next < model_low + cap);
        if (can_dispatch && (nflight == 0 || rng_below(3) != 0)) {
            flight[nflight++] = start + next++;
            continue;
        }
        assert_true(nflight > 0);
        size_t pick = rng_below(nflight);
        uint64_t seq = flight[pick];
        flight[pick] = flight[--nflight];
        assert_true(ckpt_settle(&c, seq));
        settled[seq - start] = true;
        while (model_low < total && settled[model_low])
            model_low++;
        assert_int_equal(ckpt_low(&c), start + model_low);
        /* Now a second settle of the same number is refused. */
        assert_false(ckpt_settle(&c, seq));
    }
    assert_int_equal(ckpt_low(&c), start + total);
    assert_ring_clear(&c);
    free(flight);
    free(settled);
    ckpt_free(&c);
}

static void test_random_against_model(void **state)
{
    (void)state;
    const size_t caps[] = {1, 2, 7, 8, 9, 15, 16, 17, 64, 100, 1000};
    for (size_t k = 0; k < ARRAY_LEN(caps); k++) {
        /* Enough numbers to wrap each ring many times. */
        size_t total = caps[k] * 50 + 37;
        if (total < 5000)
            total = 5000;
        run_random(caps[k], 0, total, 0x1234567 + k);
        run_random(caps[k], 1000000007, total, 0xBADC0DE + k);
    }
}

static void test_permuted_blocks(void **state)
{
    (void)state;
    /* Whole windows settled in a random order, again and again. */
    const size_t caps[] = {7, 64, 1000};
    for (size_t k = 0; k < ARRAY_LEN(caps); k++) {
        size_t cap = caps[k];
        rng_state = 99 + k;
        uint64_t *perm = malloc(cap * sizeof *perm);
        assert_non_null(perm);
        Ckpt c;
        assert_true(ckpt_init(&c, 3, cap));
        for (int round = 0; round < 200; round++) {
            uint64_t base = ckpt_low(&c);
            for (size_t i = 0; i < cap; i++)
                perm[i] = base + i;
            shuffle(perm, cap);
            uint64_t min_unsettled = base;
            bool *done = calloc(cap, sizeof *done);
            assert_non_null(done);
            for (size_t i = 0; i < cap; i++) {
                assert_true(ckpt_settle(&c, perm[i]));
                done[perm[i] - base] = true;
                while (min_unsettled < base + cap && done[min_unsettled - base])
                    min_unsettled++;
                assert_int_equal(ckpt_low(&c), min_unsettled);
            }
            free(done);
            assert_int_equal(ckpt_low(&c), base + cap);
        }
        assert_int_equal(ckpt_low(&c), 3 + 200 * (uint64_t)cap);
        assert_ring_clear(&c);
        ckpt_free(&c);
        free(perm);
    }
}

static void test_byte_skipping_mid_byte(void **state)
{
    (void)state;
    /* The watermark starts mid-byte, then whole bytes settle ahead of it. */
    Ckpt c;
    assert_true(ckpt_init(&c, 0, 40));
    for (uint64_t s = 0; s < 3; s++)
        assert_true(ckpt_settle(&c, s));
    assert_int_equal(ckpt_low(&c), 3);
    for (uint64_t s = 4; s < 43; s++)
        assert_true(ckpt_settle(&c, s));
    assert_int_equal(ckpt_low(&c), 3);
    assert_false(ckpt_settle(&c, 43)); /* window is [3, 43) */
    assert_true(ckpt_settle(&c, 3));
    assert_int_equal(ckpt_low(&c), 43);
    assert_ring_clear(&c);
    ckpt_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_in_order),
        cmocka_unit_test(test_reverse_order),
        cmocka_unit_test(test_window_edges),
        cmocka_unit_test(test_refusals_change_nothing),
        cmocka_unit_test(test_large_start),
        cmocka_unit_test(test_random_against_model),
        cmocka_unit_test(test_permuted_blocks),
        cmocka_unit_test(test_byte_skipping_mid_byte),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
