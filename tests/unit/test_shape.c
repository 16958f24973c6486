/* Unit tests for shape: the tables sql/schema.sql makes pass; each way a table made by hand
 * can break the sink's statements is found, with the DDL that fixes it; what PostgreSQL
 * would accept is accepted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shape.h"

#define MAXCOLS 16

/* PQescapeIdentifier's quoting: double quotes around, embedded ones doubled. */
static char *quote(void *ud, const char *ident)
{
    (void)ud;
    char *q = malloc(strlen(ident) * 2 + 3);
    if (q == NULL)
        return NULL;
    char *p = q;
    *p++ = '"';
    for (const char *s = ident; *s; s++) {
        if (*s == '"')
            *p++ = '"';
        *p++ = *s;
    }
    *p++ = '"';
    *p = '\0';
    return q;
}

typedef struct Fixture {
    ShapeTable t[SHAPE_NKINDS];
    ShapeColumn cols[SHAPE_NKINDS][MAXCOLS];
} Fixture;

#define TEXT(n)                                                                                    \
    {                                                                                              \
        n, "text", 'S', false, false, false, false, false                                          \
    }
#define TEXT_NN(n)                                                                                 \
    {                                                                                              \
        n, "text", 'S', false, true, false, false, false                                           \
    }
#define FLOAT(n)                                                                                   \
    {                                                                                              \
        n, "double precision", 'N', false, false, false, false, false                              \
    }
#define INT_NN(n, ty)                                                                              \
    {                                                                                              \
        n, ty, 'N', true, true, false, false, false                                                \
    }
#define NOW(n)                                                                                     \
    {                                                                                              \
        n, "timestamp with time zone", 'D', false, true, true, false, false                        \
    }

static const ShapeColumn target_cols[] = {
    {"id", "bigint", 'N', true, true, false, false, false},
    TEXT("label"),
    TEXT("geo_label"),
    TEXT("street_address"),
    TEXT("city_label"),
    TEXT("postal_code"),
    TEXT("country_label"),
    FLOAT("latitude"),
    FLOAT("longitude"),
    TEXT_NN("provider"),
    NOW("fetched_at"),
};
static const ShapeColumn failures_cols[] = {
    TEXT_NN("job"),
    {"id", "bigint", 'N', true, true, false, false, false},
    TEXT_NN("reason"),
    {"http_status", "integer", 'N', true, false, false, false, false},
    INT_NN("attempts", "integer"),
    TEXT("last_error"),
    NOW("first_seen"),
    NOW("last_seen"),
    NOW("updated_at"),
};
static const ShapeColumn checkpoint_cols[] = {
    TEXT_NN("job"),
    TEXT("position"),
    TEXT_NN("paging"),
    {"rows_loaded", "bigint", 'N', true, true, true, false, false},
    {"failures", "bigint", 'N', true, true, true, false, false},
    {"finished", "boolean", 'B', false, true, true, false, false},
    NOW("started_at"),
    NOW("updated_at"),
};

/* The tables sql/schema.sql makes. */
static void fixture(Fixture *f)
{
    static const char *const names[] = {"\"standardized_locations\"", "\"enrich_failures\"",
                                        "\"enrich_checkpoints\""};
    const ShapeColumn *src[] = {target_cols, failures_cols, checkpoint_cols};
    size_t n[] = {sizeof target_cols / sizeof target_cols[0],
                  sizeof failures_cols / sizeof failures_cols[0],
                  sizeof checkpoint_cols / sizeof checkpoint_cols[0]};
    memset(f, 0, sizeof *f);
    for (int k = 0; k < SHAPE_NKINDS; k++) {
        memcpy(f->cols[k], src[k], n[k] * sizeof src[k][0]);
        f->t[k] = (ShapeTable){.qname = names[k],
                               .relkind = 'r',
                               .has_pk = true,
                               .has_key = true,
                               .cols = f->cols[k],
                               .ncols = n[k]};
    }
}

static ShapeColumn *col(Fixture *f, ShapeKind k, const char *name)
{
    for (size_t i = 0; i < f->t[k].ncols; i++)
        if (strcmp(f->cols[k][i].name, name) == 0)
            return &f->cols[k][i];
    fail_msg("no column %s", name);
    return NULL;
}

static void drop_col(Fixture *f, ShapeKind k, const char *name)
{
    ShapeColumn *c = col(f, k, name);
    size_t i = (size_t)(c - f->cols[k]);
    memmove(c, c + 1, (f->t[k].ncols - i - 1) * sizeof *c);
    f->t[k].ncols--;
}

static void add_col(Fixture *f, ShapeKind k, ShapeColumn c)
{
    assert_true(f->t[k].ncols < MAXCOLS);
    f->cols[k][f->t[k].ncols++] = c;
}

/* Check f; expect n problems and the message to be exactly want (when not NULL). */
static void expect(const Fixture *f, size_t n, const char *want)
{
    char msg[1024] = "unset";
    size_t got = shape_check(f->t, "bigint", quote, NULL, msg, sizeof msg);
    if (got != n)
        fail_msg("%zu problems, expected %zu: %s", got, n, msg);
    if (want != NULL)
        assert_string_equal(msg, want);
}

static void test_schema_tables_pass(void **state)
{
    (void)state;
    Fixture f;
    fixture(&f);
    expect(&f, 0, "");
    /* Extra nullable or defaulted columns, another order, kinder types: still fine. */
    add_col(&f, SHAPE_TARGET, (ShapeColumn)TEXT("note"));
    add_col(&f, SHAPE_TARGET,
            (ShapeColumn){"serial", "integer", 'N', true, true, true, false, false});
    add_col(&f, SHAPE_TARGET, (ShapeColumn){"ident", "bigint", 'N', true, true, true, false, true});
    add_col(&f, SHAPE_TARGET,
            (ShapeColumn){"derived", "text", 'S', false, true, true, true, false});
    ShapeColumn first = f.cols[SHAPE_TARGET][0];
    memmove(&f.cols[SHAPE_TARGET][0], &f.cols[SHAPE_TARGET][1],
            (f.t[SHAPE_TARGET].ncols - 1) * sizeof first);
    f.cols[SHAPE_TARGET][f.t[SHAPE_TARGET].ncols - 1] = first;
    *col(&f, SHAPE_TARGET, "label") =
        (ShapeColumn){"label", "character varying(200)", 'S', false, false, false, false, false};
    *col(&f, SHAPE_TARGET, "latitude") =
        (ShapeColumn){"latitude", "numeric(9,6)", 'N', false, false, false, false, false};
    *col(&f, SHAPE_TARGET, "fetched_at") = (ShapeColumn){
        "fetched_at", "timestamp without time zone", 'D', false, false, true, false, false};
    *col(&f, SHAPE_FAILURES, "attempts") = (ShapeColumn)INT_NN("attempts", "smallint");
    *col(&f, SHAPE_CHECKPOINTS, "rows_loaded") =
        (ShapeColumn){"rows_loaded", "numeric", 'N', false, true, true, false, false};
    f.t[SHAPE_TARGET].relkind = 'p';
    f.t[SHAPE_TARGET].has_pk = false; /* a unique index is enough */
    expect(&f, 0, "");
}

static void test_no_key(void **state)
{
    (void)state;
    Fixture f;
    fixture(&f);
    f.t[SHAPE_TARGET].has_key = false;
    f.t[SHAPE_TARGET].has_pk = false;
    expect(&f, 1,
           "target table \"standardized_locations\" cannot take pgenrich's upsert: no unique "
           "index on (id); fix: ALTER TABLE \"standardized_locations\" ADD PRIMARY KEY (id)");
    /* another primary key: a unique constraint then */
    f.t[SHAPE_TARGET].has_pk = true;
    expect(&f, 1,
           "target table \"standardized_locations\" cannot take pgenrich's upsert: no unique "
           "index on (id); fix: ALTER TABLE \"standardized_locations\" ADD UNIQUE (id)");
    fixture(&f);
    f.t[SHAPE_FAILURES].has_key = false;
    expect(&f, 1,
           "failures table \"enrich_failures\" cannot take pgenrich's upsert: no unique index "
           "on (job, id); fix: ALTER TABLE \"enrich_failures\" ADD UNIQUE (job, id)");
    fixture(&f);
    f.t[SHAPE_CHECKPOINTS].deferrable_key = "ck\"pk";
    f.t[SHAPE_CHECKPOINTS].deferrable_is_pk = true;
    expect(&f, 1,
           "checkpoint table \"enrich_checkpoints\" cannot take pgenrich's upsert: its unique "
           "constraint \"ck\"\"pk\" on (job) is DEFERRABLE, which ON CONFLICT cannot use; fix: "
           "ALTER TABLE \"enrich_checkpoints\" DROP CONSTRAINT \"ck\"\"pk\", ADD PRIMARY KEY "
           "(job)");
}

static void test_missing_columns(void **state)
{
    (void)state;
    Fixture f;
    fixture(&f);
    drop_col(&f, SHAPE_TARGET, "provider");
    expect(&f, 1,
           "target table \"standardized_locations\" cannot take pgenrich's upsert: column "
           "\"provider\" is missing; fix: ALTER TABLE \"standardized_locations\" ADD COLUMN "
           "\"provider\" text");
    fixture(&f);
    drop_col(&f, SHAPE_FAILURES, "last_seen");
    expect(&f, 1,
           "failures table \"enrich_failures\" cannot take pgenrich's upsert: column "
           "\"last_seen\" is missing; fix: ALTER TABLE \"enrich_failures\" ADD COLUMN "
           "\"last_seen\" timestamptz NOT NULL DEFAULT now()");
    fixture(&f);
    drop_col(&f, SHAPE_FAILURES, "id");
    expect(&f, 1, NULL);
    char msg[512];
    shape_check(f.t, "character varying(20)", quote, NULL, msg, sizeof msg);
    assert_non_null(strstr(msg, "ADD COLUMN \"id\" character varying(20)"));
}

static void test_types(void **state)
{
    (void)state;
    Fixture f;
    fixture(&f);
    *col(&f, SHAPE_TARGET, "latitude") = (ShapeColumn)INT_NN("latitude", "integer");
    col(&f, SHAPE_TARGET, "latitude")->not_null = false;
    expect(&f, 1,
           "target table \"standardized_locations\" cannot take pgenrich's upsert: column "
           "\"latitude\" has type integer, which cannot take pgenrich's decimal numbers; fix: "
           "ALTER TABLE \"standardized_locations\" ALTER COLUMN \"latitude\" TYPE double "
           "precision");
    fixture(&f);
    *col(&f, SHAPE_TARGET, "label") =
        (ShapeColumn){"label", "jsonb", 'U', false, false, false, false, false};
    expect(&f, 1, NULL);
    fixture(&f);
    *col(&f, SHAPE_FAILURES, "attempts") = (ShapeColumn)TEXT_NN("attempts");
    expect(&f, 1, NULL);
    fixture(&f);
    *col(&f, SHAPE_CHECKPOINTS, "finished") =
        (ShapeColumn){"finished", "integer", 'N', true, true, true, false, false};
    expect(&f, 1, NULL);
    fixture(&f);
    col(&f, SHAPE_CHECKPOINTS, "updated_at")->category = 'N';
    col(&f, SHAPE_CHECKPOINTS, "updated_at")->type = "integer";
    char msg[512];
    assert_int_equal(shape_check(f.t, "bigint", quote, NULL, msg, sizeof msg), 1);
    assert_non_null(strstr(msg, "ALTER COLUMN \"updated_at\" TYPE timestamptz"));
    /* now() goes into a text column through the assignment cast */
    fixture(&f);
    *col(&f, SHAPE_TARGET, "fetched_at") = (ShapeColumn)TEXT_NN("fetched_at");
    col(&f, SHAPE_TARGET, "fetched_at")->has_default = true;
    expect(&f, 0, "");
}

static void test_nulls_defaults_generated(void **state)
{
    (void)state;
    Fixture f;
    fixture(&f);
    add_col(&f, SHAPE_TARGET, (ShapeColumn)TEXT_NN("note"));
    expect(&f, 1,
           "target table \"standardized_locations\" cannot take pgenrich's upsert: column "
           "\"note\" is NOT NULL without a default and pgenrich does not fill it; fix: ALTER "
           "TABLE \"standardized_locations\" ALTER COLUMN \"note\" DROP NOT NULL");
    fixture(&f);
    col(&f, SHAPE_TARGET, "label")->not_null = true;
    expect(&f, 1,
           "target table \"standardized_locations\" cannot take pgenrich's upsert: column "
           "\"label\" is NOT NULL but pgenrich may leave it empty; fix: ALTER TABLE "
           "\"standardized_locations\" ALTER COLUMN \"label\" DROP NOT NULL");
    fixture(&f);
    col(&f, SHAPE_FAILURES, "first_seen")->has_default = false;
    expect(&f, 1,
           "failures table \"enrich_failures\" cannot take pgenrich's upsert: column "
           "\"first_seen\" has no default and pgenrich relies on one; fix: ALTER TABLE "
           "\"enrich_failures\" ALTER COLUMN \"first_seen\" SET DEFAULT now()");
    /* a nullable column without its default would still take the insert, but leave NULL */
    col(&f, SHAPE_FAILURES, "first_seen")->not_null = false;
    expect(&f, 1, NULL);
    fixture(&f);
    col(&f, SHAPE_TARGET, "geo_label")->generated = true;
    col(&f, SHAPE_TARGET, "geo_label")->has_default = true;
    expect(&f, 1,
           "target table \"standardized_locations\" cannot take pgenrich's upsert: column "
           "\"geo_label\" is generated but pgenrich writes it; fix: ALTER TABLE "
           "\"standardized_locations\" ALTER COLUMN \"geo_label\" DROP EXPRESSION");
    fixture(&f);
    col(&f, SHAPE_TARGET, "id")->identity_always = true;
    col(&f, SHAPE_TARGET, "id")->has_default = true;
    expect(&f, 1,
           "target table \"standardized_locations\" cannot take pgenrich's upsert: column "
           "\"id\" is GENERATED ALWAYS AS IDENTITY but pgenrich writes it; fix: ALTER TABLE "
           "\"standardized_locations\" ALTER COLUMN \"id\" SET GENERATED BY DEFAULT");
    /* a generated column the sink never writes is fine */
    fixture(&f);
    col(&f, SHAPE_CHECKPOINTS, "started_at")->generated = true;
    expect(&f, 0, "");
}

static void test_not_a_table_and_counts(void **state)
{
    (void)state;
    Fixture f;
    fixture(&f);
    f.t[SHAPE_FAILURES].relkind = 'v';
    expect(&f, 1,
           "failures table \"enrich_failures\" cannot take pgenrich's upsert: it is a view; "
           "fix: choose another name with --failures-table, or drop it");
    f.t[SHAPE_FAILURES].relkind = '\0';
    expect(&f, 1, NULL);
    /* the first problem is reported, with how many follow, across tables */
    fixture(&f);
    f.t[SHAPE_TARGET].has_key = false;
    f.t[SHAPE_TARGET].has_pk = false;
    drop_col(&f, SHAPE_TARGET, "provider");
    add_col(&f, SHAPE_CHECKPOINTS, (ShapeColumn)TEXT_NN("owner"));
    expect(&f, 3,
           "target table \"standardized_locations\" cannot take pgenrich's upsert: no unique "
           "index on (id) (and 2 more problems); fix: ALTER TABLE \"standardized_locations\" "
           "ADD PRIMARY KEY (id)");
    f.t[SHAPE_TARGET].has_key = true;
    drop_col(&f, SHAPE_CHECKPOINTS, "owner");
    expect(&f, 1, NULL);
    add_col(&f, SHAPE_CHECKPOINTS, (ShapeColumn)TEXT_NN("owner"));
    char msg[512];
    assert_int_equal(shape_check(f.t, "bigint", quote, NULL, msg, sizeof msg), 2);
    assert_non_null(strstr(msg, "(and 1 more problem);"));
    /* a short buffer truncates, never overflows */
    char tiny[16];
    assert_int_equal(shape_check(f.t, "bigint", quote, NULL, tiny, sizeof tiny), 2);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_tables_pass),
        cmocka_unit_test(test_no_key),
        cmocka_unit_test(test_missing_columns),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_nulls_defaults_generated),
        cmocka_unit_test(test_not_a_table_and_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
