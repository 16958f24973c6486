/* shape: the columns and keys the sink's statements need (src/sink.c), checked against a
 * description of the existing tables. The rules follow what PostgreSQL would do with the
 * statements, so a table they would work on passes and one they would fail on does not. */
#include "shape.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the sink puts into a column; which catalog types can take it. */
typedef enum ValueKind {
    V_KEY,   /* the source key: its type is checked against the source's (db_init_schema) */
    V_TEXT,  /* text through COPY or a literal: a string type */
    V_FLOAT, /* a decimal through COPY: a numeric type other than an integer */
    V_INT,   /* an integer (COPY, literal or a sum): any numeric type */
    V_BOOL,  /* true / false */
    V_TIME,  /* now(): a date/time type, or a string (the assignment cast goes via text) */
} ValueKind;

enum {
    C_INSERT = 1u << 0,  /* in the INSERT's column list */
    C_UPDATE = 1u << 1,  /* set by ON CONFLICT DO UPDATE */
    C_NULL = 1u << 2,    /* the sink may write NULL into it */
    C_DEFAULT = 1u << 3, /* left to its default on INSERT */
};

typedef struct ColSpec {
    const char *name;
    ValueKind kind;
    unsigned flags;
    const char *type; /* for ALTER COLUMN TYPE and ADD COLUMN (NULL: the key type) */
    const char *dflt; /* the default the sink relies on (C_DEFAULT), for SET DEFAULT */
} ColSpec;

#define IU (C_INSERT | C_UPDATE)

static const ColSpec target_cols[] = {
    {"id", V_KEY, C_INSERT, NULL, NULL},
    {"label", V_TEXT, IU | C_NULL, "text", NULL},
    {"geo_label", V_TEXT, IU | C_NULL, "text", NULL},
    {"street_address", V_TEXT, IU | C_NULL, "text", NULL},
    {"city_label", V_TEXT, IU | C_NULL, "text", NULL},
    {"postal_code", V_TEXT, IU | C_NULL, "text", NULL},
    {"country_label", V_TEXT, IU | C_NULL, "text", NULL},
    {"latitude", V_FLOAT, IU | C_NULL, "double precision", NULL},
    {"longitude", V_FLOAT, IU | C_NULL, "double precision", NULL},
    {"provider", V_TEXT, IU, "text", NULL},
    {"fetched_at", V_TIME, C_UPDATE | C_DEFAULT, "timestamptz", "now()"},
};

static const ColSpec failures_cols[] = {
    {"job", V_TEXT, C_INSERT, "text", NULL},
    {"id", V_KEY, C_INSERT, NULL, NULL},
    {"reason", V_TEXT, IU, "text", NULL},
    {"http_status", V_INT, IU | C_NULL, "int", NULL},
    {"attempts", V_INT, IU, "int", NULL},
    {"last_error", V_TEXT, IU | C_NULL, "text", NULL},
    {"first_seen", V_TIME, C_DEFAULT, "timestamptz", "now()"},
    {"last_seen", V_TIME, C_UPDATE | C_DEFAULT, "timestamptz", "now()"},
    {"updated_at", V_TIME, C_UPDATE | C_DEFAULT, "timestamptz", "now()"},
};

static const ColSpec checkpoint_cols[] = {
    {"job", V_TEXT, C_INSERT, "text", NULL},
    {"position", V_TEXT, IU | C_NULL, "text", NULL},
    {"paging", V_TEXT, IU, "text", NULL},
    {"rows_loaded", V_INT, IU, "bigint", NULL},
    {"failures", V_INT, IU, "bigint", NULL},
    {"finished", V_BOOL, IU, "boolean", NULL},
    {"started_at", V_TIME, C_DEFAULT, "timestamptz", "now()"},
    {"updated_at", V_TIME, C_UPDATE | C_DEFAULT, "timestamptz", "now()"},
};

typedef struct TableSpec {
    const char *what; /* for messages */
    const char *flag; /* the option that names the table */
    const char *key;  /* the conflict target, as written in DDL */
    const ColSpec *cols;
    size_t ncols;
} TableSpec;

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
static const TableSpec specs[SHAPE_NKINDS] = {
    {"target", "--target-table", "id", target_cols, N_OF(target_cols)},
    {"failures", "--failures-table", "job, id", failures_cols, N_OF(failures_cols)},
    {"checkpoint", "--checkpoint-table", "job", checkpoint_cols, N_OF(checkpoint_cols)},
};

#define PART_MAX 400

typedef struct Ctx {
    size_t n;
    shape_quote_fn quote;
    void *ud;
    const TableSpec *spec;
    const ShapeTable *table;
    char first[PART_MAX * 2 + 200]; /* what table ... : problem */
    char fix[PART_MAX];
} Ctx;

/* Record a problem of the current table; only the first one's text is kept. */
static void problem(Ctx *x, const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void problem(Ctx *x, const char *fix, const char *fmt, ...)
{
    if (x->n++ > 0)
        return;
    char what[PART_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(x->first, sizeof x->first, "%s table %s cannot take pgenrich's upsert: %s",
             x->spec->what, x->table->qname, what);
    snprintf(x->fix, sizeof x->fix, "%s", fix);
}

/* ident quoted into buf (a bare "?" if quoting failed: the message is still useful). */
static const char *quoted(Ctx *x, const char *ident, char *buf, size_t len)
{
    char *q = x->quote(x->ud, ident);
    snprintf(buf, len, "%s", q ? q : "?");
    free(q);
    return buf;
}

static const ShapeColumn *find_col(const ShapeTable *t, const char *name)
{
    for (size_t i = 0; i < t->ncols; i++)
        if (strcmp(t->cols[i].name, name) == 0)
            return &t->cols[i];
    return NULL;
}

static bool spec_has(const TableSpec *s, const char *name)
{
    for (size_t i = 0; i < s->ncols; i++)
        if (strcmp(s->cols[i].name, name) == 0)
            return true;
    return false;
}

static bool type_fits(ValueKind k, const ShapeColumn *c)
{
    switch (k) {
    case V_KEY:
        return true;
    case V_TEXT:
        return c->category == 'S';
    case V_FLOAT:
        return c->category == 'N' && !c->is_integer;
    case V_INT:
        return c->category == 'N';
    case V_BOOL:
        return c->category == 'B';
    case V_TIME:
        return c->category == 'D' || c->category == 'S';
    }
    return false;
}

static const char *kind_name(ValueKind k)
{
    switch (k) {
    case V_TEXT:
        return "text";
    case V_FLOAT:
        return "decimal numbers";
    case V_INT:
        return "integers";
    case V_BOOL:
        return "booleans";
    case V_TIME:
        return "timestamps";
    case V_KEY:
        break;
    }
    return "keys";
}

static const char *relkind_name(char k)
{
    switch (k) {
    case 'v':
        return "a view";
    case 'm':
        return "a materialized view";
    case 'f':
        return "a foreign table";
    case 'S':
        return "a sequence";
    case 'i':
    case 'I':
        return "an index";
    case 'c':
        return "a composite type";
    default:
        return "not a table";
    }
}

static void check_key(Ctx *x)
{
    const ShapeTable *t = x->table;
    const char *key = x->spec->key;
    char fix[PART_MAX], qc[160];
    const char *add = t->has_pk ? "UNIQUE" : "PRIMARY KEY";
    if (t->deferrable_key != NULL) {
        quoted(x, t->deferrable_key, qc, sizeof qc);
        snprintf(fix, sizeof fix, "ALTER TABLE %s DROP CONSTRAINT %s, ADD %s (%s)", t->qname, qc,
                 t->deferrable_is_pk ? "PRIMARY KEY" : "UNIQUE", key);
        problem(x, fix,
                "its unique constraint %s on (%s) is DEFERRABLE, which ON CONFLICT "
                "cannot use",
                qc, key);
    } else if (!t->has_key) {
        snprintf(fix, sizeof fix, "ALTER TABLE %s ADD %s (%s)", t->qname, add, key);
        problem(x, fix, "no unique index on (%s)", key);
    }
}

static void check_column(Ctx *x, const ColSpec *s, const char *key_type)
{
    const ShapeTable *t = x->table;
    char fix[PART_MAX + 64], qc[160]; /* room for the quoted name around a part */
    quoted(x, s->name, qc, sizeof qc);
    const ShapeColumn *c = find_col(t, s->name);
    if (c == NULL) {
        /* NOT NULL only with a default: a table with rows could not take it otherwise. */
        char dflt[64] = "";
        if (s->dflt != NULL)
            snprintf(dflt, sizeof dflt, " NOT NULL DEFAULT %s", s->dflt);
        snprintf(fix, sizeof fix, "ALTER TABLE %s ADD COLUMN %s %.200s%s", t->qname, qc,
                 s->type ? s->type : key_type, dflt);
        problem(x, fix, "column %s is missing", qc);
        return;
    }
    bool written = (s->flags & (C_INSERT | C_UPDATE)) != 0;
    if (!type_fits(s->kind, c)) {
        snprintf(fix, sizeof fix, "ALTER TABLE %s ALTER COLUMN %s TYPE %s", t->qname, qc, s->type);
        problem(x, fix, "column %s has type %.100s, which cannot take pgenrich's %s", qc, c->type,
                kind_name(s->kind));
    }
    if (written && c->generated) {
        snprintf(fix, sizeof fix, "ALTER TABLE %s ALTER COLUMN %s DROP EXPRESSION", t->qname, qc);
        problem(x, fix, "column %s is generated but pgenrich writes it", qc);
    }
    if (written && c->identity_always) {
        snprintf(fix, sizeof fix, "ALTER TABLE %s ALTER COLUMN %s SET GENERATED BY DEFAULT",
                 t->qname, qc);
        problem(x, fix, "column %s is GENERATED ALWAYS AS IDENTITY but pgenrich writes it", qc);
    }
    if ((s->flags & C_NULL) && c->not_null) {
        snprintf(fix, sizeof fix, "ALTER TABLE %s ALTER COLUMN %s DROP NOT NULL", t->qname, qc);
        problem(x, fix, "column %s is NOT NULL but pgenrich may leave it empty", qc);
    }
    if ((s->flags & C_DEFAULT) && !c->has_default) {
        snprintf(fix, sizeof fix, "ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s", t->qname, qc,
                 s->dflt);
        problem(x, fix, "column %s has no default and pgenrich relies on one", qc);
    }
}

/* Columns the sink never names: an INSERT leaves them to their defaults (NULL if none). */
static void check_others(Ctx *x)
{
    const ShapeTable *t = x->table;
    char fix[PART_MAX], qc[160];
    for (size_t i = 0; i < t->ncols; i++) {
        const ShapeColumn *c = &t->cols[i];
        if (!c->not_null || c->has_default || spec_has(x->spec, c->name))
            continue;
        quoted(x, c->name, qc, sizeof qc);
        snprintf(fix, sizeof fix, "ALTER TABLE %s ALTER COLUMN %s DROP NOT NULL", t->qname, qc);
        problem(x, fix, "column %s is NOT NULL without a default and pgenrich does not fill it",
                qc);
    }
}

size_t shape_check(const ShapeTable tables[SHAPE_NKINDS], const char *key_type,
                   shape_quote_fn quote, void *ud, char *msg, size_t msglen)
{
    Ctx x = {.quote = quote, .ud = ud};
    for (int k = 0; k < SHAPE_NKINDS; k++) {
        x.spec = &specs[k];
        x.table = &tables[k];
        const ShapeTable *t = x.table;
        char fix[PART_MAX];
        if (t->relkind == '\0') {
            problem(&x, "pgenrich init", "it does not exist");
            continue;
        }
        if (t->relkind != 'r' && t->relkind != 'p') {
            snprintf(fix, sizeof fix, "choose another name with %s, or drop it", x.spec->flag);
            problem(&x, fix, "it is %s", relkind_name(t->relkind));
            continue;
        }
        check_key(&x);
        for (size_t i = 0; i < x.spec->ncols; i++)
            check_column(&x, &x.spec->cols[i], key_type);
        check_others(&x);
    }
    if (x.n == 0) {
        if (msglen > 0)
            msg[0] = '\0';
        return 0;
    }
    char more[64] = "";
    if (x.n > 1)
        snprintf(more, sizeof more, " (and %zu more problem%s)", x.n - 1, x.n > 2 ? "s" : "");
    snprintf(msg, msglen, "%s%s; fix: %s", x.first, more, x.fix);
    return x.n;
}
