/* db: blocking PostgreSQL chores done before the event loop starts: connect, key type,
 * schema, checkpoint read and reset. Values reach SQL only as parameters and names only
 * as PQescapeIdentifier-quoted identifiers. */
#include "db.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "shape.h"

/* sql/schema.sql, NUL-terminated; generated into schema_sql.c by the build. */
extern const char schema_sql[];

/* Cap on any statement text built here; the largest is the schema (a few KiB). */
#define SQL_MAX (1024 * 1024)

/* Serialises concurrent `init`s of the same database (two workers creating the same tables
 * at once would otherwise race in the catalog): "pgenrich" in ASCII. */
#define SCHEMA_LOCK_KEY "8099553979889443688"

/* The first line of src, without trailing blanks; other control characters (a tab in a
 * quoted COPY line) become spaces so that the message stays one clean log line. */
static void copy_first_line(char *dst, size_t dstlen, const char *src)
{
    if (dstlen == 0)
        return;
    size_t n = strcspn(src, "\r\n");
    while (n > 0 && (src[n - 1] == ' ' || src[n - 1] == '\t'))
        n--;
    if (n >= dstlen)
        n = dstlen - 1;
    for (size_t i = 0; i < n; i++)
        dst[i] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ? ' ' : src[i];
    dst[n] = '\0';
}

void db_error(const PGconn *c, const PGresult *res, const char *what, char *err, size_t errlen)
{
    const char *msg = NULL;
    if (res != NULL)
        msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    if ((msg == NULL || *msg == '\0') && res != NULL)
        msg = PQresultErrorMessage(res);
    if ((msg == NULL || *msg == '\0') && c != NULL)
        msg = PQerrorMessage(c);
    if (msg == NULL || *msg == '\0')
        msg = res != NULL ? PQresStatus(PQresultStatus(res)) : "unknown error";

    char line[512];
    copy_first_line(line, sizeof line, msg);
    if (line[0] == '\0')
        snprintf(line, sizeof line, "unknown error");
    if (what != NULL)
        snprintf(err, errlen, "%s: %s", what, line);
    else
        snprintf(err, errlen, "%s", line);
}

/* The libpq parameters that --db-keepalive stands for. */
static const char *const keepalive_keys[] = {"keepalives", "keepalives_idle", "keepalives_interval",
                                             "keepalives_count", "tcp_user_timeout"};

/* Whether conninfo sets any keepalive parameter itself. A conninfo that does not parse
 * (a bare database name, or a mistake PQconnectdbParams will report) sets none. */
static bool sets_keepalives(const char *conninfo)
{
    if (conninfo == NULL || *conninfo == '\0')
        return false;
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
    PQfreemem(perr);
    if (opts == NULL)
        return false;
    bool found = false;
    for (PQconninfoOption *o = opts; o->keyword != NULL && !found; o++) {
        if (o->val == NULL || *o->val == '\0')
            continue;
        for (size_t i = 0; i < ARRAY_LEN(keepalive_keys); i++)
            if (strcmp(o->keyword, keepalive_keys[i]) == 0)
                found = true;
    }
    PQconninfoFree(opts);
    return found;
}

/* SET statement_timeout: after connecting rather than in the options parameter, which
 * would replace an options=-c... the user's conninfo carries. */
static bool set_statement_timeout(PGconn *c, double seconds, char *err, size_t errlen)
{
    char sql[64];
    long long ms = (long long)(seconds * 1000.0 + 0.5);
    /* in milliseconds, and never 0, which would mean no timeout at all */
    snprintf(sql, sizeof sql, "SET statement_timeout = %lld", ms > 0 ? ms : 1);
    PGresult *r = PQexec(c, sql);
    bool ok = r != NULL && PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        db_error(c, r, "connect: setting statement_timeout", err, errlen);
    PQclear(r);
    return ok;
}

/* The parameters of a connection, with the buffers their values point into. */
typedef struct ConnParams {
    const char *keys[4 + ARRAY_LEN(keepalive_keys)];
    const char *vals[4 + ARRAY_LEN(keepalive_keys)];
    char idle[16], interval[16], count[16], user_timeout[24];
} ConnParams;

static void conn_params(ConnParams *p, const char *conninfo, const DbConnOpts *opts)
{
    /* libpq skips entries whose value is NULL or "", so no conninfo means the PG*
     * variables. Entries after dbname override what the expanded conninfo says: the data
     * we send (COPY rows from JSON) and the keys we put in URLs are UTF-8. */
    size_t n = 0;
    p->keys[n] = "dbname";
    p->vals[n++] = conninfo;
    p->keys[n] = "client_encoding";
    p->vals[n++] = "UTF8";
    p->keys[n] = "fallback_application_name";
    p->vals[n++] = "pgenrich";
    /* A dead peer is found after idle + interval * count seconds of silence; a write the
     * peer never acknowledges gives up after about as long (tcp_user_timeout). */
    if (opts != NULL && opts->keepalive_idle > 0 && !sets_keepalives(conninfo)) {
        int iv = opts->keepalive_idle / 3;
        iv = iv < 1 ? 1 : iv > 60 ? 60 : iv;
        int cnt = 3;
        snprintf(p->idle, sizeof p->idle, "%d", opts->keepalive_idle);
        snprintf(p->interval, sizeof p->interval, "%d", iv);
        snprintf(p->count, sizeof p->count, "%d", cnt);
        snprintf(p->user_timeout, sizeof p->user_timeout, "%lld",
                 ((long long)opts->keepalive_idle + (long long)iv * cnt) * 1000);
        const char *kv[] = {"1", p->idle, p->interval, p->count, p->user_timeout};
        for (size_t i = 0; i < ARRAY_LEN(keepalive_keys); i++) {
            p->keys[n] = keepalive_keys[i];
            p->vals[n++] = kv[i];
        }
    }
    p->keys[n] = NULL;
    p->vals[n] = NULL;
}

bool db_session_setup(PGconn *c, const DbConnOpts *opts, char *err, size_t errlen)
{
    return opts == NULL || opts->statement_timeout <= 0 ||
           set_statement_timeout(c, opts->statement_timeout, err, errlen);
}

PGconn *db_connect(const char *conninfo, const DbConnOpts *opts, char *err, size_t errlen)
{
    ConnParams p;
    conn_params(&p, conninfo, opts);
    PGconn *c = PQconnectdbParams(p.keys, p.vals, 1);
    if (c == NULL) {
        snprintf(err, errlen, "connect: out of memory");
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        db_error(c, NULL, "connect", err, errlen);
        PQfinish(c);
        return NULL;
    }
    if (!db_session_setup(c, opts, err, errlen)) {
        PQfinish(c);
        return NULL;
    }
    return c;
}

PGconn *db_connect_start(const char *conninfo, const DbConnOpts *opts)
{
    ConnParams p;
    conn_params(&p, conninfo, opts);
    return PQconnectStartParams(p.keys, p.vals, 1);
}

char *db_quote_ident(PGconn *c, const char *ident)
{
    char *q = PQescapeIdentifier(c, ident, strlen(ident));
    if (q == NULL)
        return NULL;
    char *dup = strdup(q);
    PQfreemem(q);
    return dup;
}

char *db_quote_literal(PGconn *c, const char *str)
{
    char *q = PQescapeLiteral(c, str, strlen(str));
    if (q == NULL)
        return NULL;
    char *dup = strdup(q);
    PQfreemem(q);
    return dup;
}

PGresult *db_exec(PGconn *c, const char *sql, int n, const char *const *params, const char *what)
{
    bool sent = params != NULL ? PQsendQueryParams(c, sql, n, NULL, params, NULL, NULL, 0)
                               : PQsendQuery(c, sql);
    if (!sent)
        return NULL;
    int waited = 0;
    while (PQisBusy(c)) {
        struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
        int ready = poll(&p, 1, DB_SLOW_S * 1000);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready == 0) {
            waited += DB_SLOW_S;
            log_warn("event=db_slow waiting_s=%d what=\"%s\" detail=\"the statement has not "
                     "ended yet: another session may hold a lock on the table (see pg_locks), "
                     "or the server is slow; statement_timeout ends it\"",
                     waited, what ? what : "a statement");
            continue;
        }
        if (ready < 0 || !PQconsumeInput(c))
            break; /* PQgetResult below reports the broken connection */
    }
    PGresult *last = NULL, *r;
    while ((r = PQgetResult(c)) != NULL) {
        PQclear(last);
        last = r;
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH ||
            PQstatus(c) == CONNECTION_BAD)
            break;
    }
    return last;
}

/* Run sql with text parameters and expect `want`. On failure writes the reason (prefixed
 * by what) and returns NULL. */
static PGresult *exec_params(PGconn *c, const char *sql, int n, const char *const *params,
                             ExecStatusType want, const char *what, char *err, size_t errlen)
{
    static const char *const none[1] = {NULL};
    PGresult *r = db_exec(c, sql, n, params ? params : none, what);
    if (r == NULL || PQresultStatus(r) != want) {
        db_error(c, r, what, err, errlen);
        PQclear(r);
        return NULL;
    }
    return r;
}

/* The type of column col of the relation named by quoted identifier qtable. *exists says
 * whether the relation exists; *type_out is NULL when it or the column does not. With
 * order_out, *order_out is the type as the column compares: with " COLLATE schema.name"
 * appended when its collation is not the default one (spelled by quote_ident, so it may
 * stand in SQL text). */
static bool column_type(PGconn *c, const char *qtable, const char *col, bool *exists,
                        char **type_out, char **order_out, char *err, size_t errlen)
{
    static const char sql[] =
        "SELECT r.oid IS NOT NULL, pg_catalog.format_type(a.atttypid, a.atttypmod), "
        "CASE WHEN a.attcollation NOT IN (0, 100) THEN ' COLLATE ' || "
        "pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(l.collname) "
        "ELSE '' END "
        "FROM (SELECT pg_catalog.to_regclass($1) AS oid) r "
        "LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attname = $2 "
        "AND a.attnum > 0 AND NOT a.attisdropped "
        "LEFT JOIN pg_catalog.pg_collation l ON l.oid = a.attcollation "
        "LEFT JOIN pg_catalog.pg_namespace n ON n.oid = l.collnamespace";
    const char *params[2] = {qtable, col};
    *type_out = NULL;
    if (order_out != NULL)
        *order_out = NULL;
    PGresult *r =
        exec_params(c, sql, 2, params, PGRES_TUPLES_OK, "reading the catalog", err, errlen);
    if (r == NULL)
        return false;
    bool ok = false;
    if (PQntuples(r) != 1 || PQnfields(r) != 3) {
        snprintf(err, errlen, "reading the catalog: unexpected answer");
        goto done;
    }
    *exists = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    if (!PQgetisnull(r, 0, 1)) {
        *type_out = strdup(PQgetvalue(r, 0, 1));
        if (*type_out == NULL)
            goto oom;
        if (order_out != NULL) {
            size_t n = strlen(*type_out) + strlen(PQgetvalue(r, 0, 2)) + 1;
            if ((*order_out = malloc(n)) == NULL)
                goto oom;
            snprintf(*order_out, n, "%s%s", *type_out, PQgetvalue(r, 0, 2));
        }
    }
    ok = true;
    goto done;
oom:
    snprintf(err, errlen, "out of memory");
    free(*type_out);
    *type_out = NULL;
done:
    PQclear(r);
    return ok;
}

bool db_key_type(PGconn *c, const DbNames *names, char **type_out, char **order_out, char *err,
                 size_t errlen)
{
    bool ok = false, exists = false;
    *type_out = NULL;
    if (order_out != NULL)
        *order_out = NULL;
    char *qsource = db_quote_ident(c, names->source);
    if (qsource == NULL) {
        db_error(c, NULL, "quoting the source table name", err, errlen);
        return false;
    }
    if (!column_type(c, qsource, names->key, &exists, type_out, order_out, err, errlen))
        goto done;
    if (!exists) {
        snprintf(err, errlen, "source table %s does not exist", qsource);
        goto done;
    }
    if (*type_out == NULL) {
        char *qkey = db_quote_ident(c, names->key);
        snprintf(err, errlen, "column %s not found in %s", qkey ? qkey : names->key, qsource);
        free(qkey);
        goto done;
    }
    ok = true;
done:
    free(qsource);
    return ok;
}

/* Whether t may stand in SQL text as a type name: outside double quotes only letters,
 * digits, space, '_', ',', '.', and balanced parentheses; inside double quotes anything
 * (a quoted identifier is inert; "" is its escaped quote). format_type never prints more,
 * so this only guards against a caller passing something else. */
static bool type_name_ok(const char *t)
{
    int depth = 0;
    bool quoted = false;
    if (*t == '\0')
        return false;
    for (const unsigned char *p = (const unsigned char *)t; *p; p++) {
        unsigned char ch = *p;
        if (ch == '"') {
            quoted = !quoted;
        } else if (quoted) {
            continue;
        } else if (ch == '(') {
            depth++;
        } else if (ch == ')') {
            if (--depth < 0)
                return false;
        } else if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                     (ch >= '0' && ch <= '9') || ch == ' ' || ch == '_' || ch == ',' ||
                     ch == '.')) {
            return false;
        }
    }
    return !quoted && depth == 0;
}

/* Copy tmpl into out, replacing each {{name}} by the value of that name. An unknown or
 * unterminated placeholder is an error (it would be a bug in schema.sql). */
static bool render(const char *tmpl, const char *const *keys, const char *const *vals, size_t n,
                   Buf *out, char *err, size_t errlen)
{
    const char *p = tmpl;
    for (;;) {
        const char *open = strstr(p, "{{");
        if (open == NULL)
            break;
        const char *close = strstr(open + 2, "}}");
        if (close == NULL) {
            snprintf(err, errlen, "schema template: unterminated placeholder");
            return false;
        }
        size_t klen = (size_t)(close - open - 2);
        size_t i = 0;
        while (i < n && !(strlen(keys[i]) == klen && memcmp(keys[i], open + 2, klen) == 0))
            i++;
        if (i == n) {
            snprintf(err, errlen, "schema template: unknown placeholder {{%.*s}}",
                     (int)(klen > 64 ? 64 : klen), open + 2);
            return false;
        }
        if (!buf_append(out, p, (size_t)(open - p)) || !buf_puts(out, vals[i])) {
            snprintf(err, errlen, "schema template: out of memory");
            return false;
        }
        p = close + 2;
    }
    if (!buf_puts(out, p)) {
        snprintf(err, errlen, "schema template: out of memory");
        return false;
    }
    return true;
}

static bool exec_simple(PGconn *c, const char *sql, const char *what, char *err, size_t errlen)
{
    PGresult *r = db_exec(c, sql, 0, NULL, what);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        db_error(c, r, what, err, errlen);
    PQclear(r);
    return ok;
}

/* An existing table (quoted name q) whose id column is not of key_type would make every
 * flush fail later, with a less helpful message: refuse now. */
static bool check_id_type(PGconn *c, const char *q, const char *key_type, char *err, size_t errlen)
{
    bool exists = false;
    char *type = NULL;
    if (!column_type(c, q, "id", &exists, &type, NULL, err, errlen))
        return false;
    bool ok = true;
    if (exists && type == NULL) {
        snprintf(err, errlen, "table %s exists but has no id column", q);
        ok = false;
    } else if (exists && strcmp(type, key_type) != 0) {
        snprintf(err, errlen,
                 "table %s exists with id of type %s but the source key is %s; drop it or "
                 "choose another table name",
                 q, type, key_type);
        ok = false;
    }
    free(type);
    return ok;
}

bool db_init_schema(PGconn *c, const DbNames *names, const char *key_type, char *err, size_t errlen)
{
    bool ok = false, in_tx = false;
    char *qt = NULL, *qf = NULL, *qc = NULL, *lf = NULL, *qr = NULL, *qri = NULL, *qg = NULL,
         *qw = NULL;
    char index_name[128];
    Buf sql;
    buf_init(&sql, SQL_MAX);

    if (!type_name_ok(key_type)) {
        snprintf(err, errlen, "refusing key type \"%.100s\": not a plain type name", key_type);
        goto done;
    }
    qt = db_quote_ident(c, names->target);
    qf = db_quote_ident(c, names->failures);
    qc = db_quote_ident(c, names->checkpoints);
    /* The migration block finds the ledger by name at run time: it gets the quoted name
     * as a string literal, outside the block's dollar-quoted body. */
    if (qf != NULL)
        lf = db_quote_literal(c, qf);
    /* The server truncates a long index name to 63 bytes, as it would its own. */
    snprintf(index_name, sizeof index_name, "%.100s_job_started", names->runs);
    qr = db_quote_ident(c, names->runs);
    qri = db_quote_ident(c, index_name);
    qg = db_quote_ident(c, names->ranges ? names->ranges : "enrich_ranges");
    qw = db_quote_ident(c, names->workers ? names->workers : "enrich_workers");
    if (qt == NULL || qf == NULL || qc == NULL || lf == NULL || qr == NULL || qri == NULL ||
        qg == NULL || qw == NULL) {
        db_error(c, NULL, "quoting table names", err, errlen);
        goto done;
    }
    const char *const keys[] = {"target", "failures",   "checkpoints", "key_type", "failures_text",
                                "runs",   "runs_index", "ranges",      "workers"};
    const char *const vals[] = {qt, qf, qc, key_type, lf, qr, qri, qg, qw};
    if (!render(schema_sql, keys, vals, ARRAY_LEN(keys), &sql, err, errlen))
        goto done;

    /* One transaction: the lock, the checks and the CREATEs. "already exists, skipping"
     * notices are expected on every run after the first; keep them off stderr. */
    if (!exec_simple(c, "BEGIN", "schema", err, errlen))
        goto done;
    in_tx = true;
    if (!exec_simple(c,
                     "SET LOCAL client_min_messages = warning; "
                     "SELECT pg_catalog.pg_advisory_xact_lock(" SCHEMA_LOCK_KEY ")",
                     "schema", err, errlen))
        goto done;
    if (!check_id_type(c, qt, key_type, err, errlen) ||
        !check_id_type(c, qf, key_type, err, errlen))
        goto done;
    if (!exec_simple(c, sql.data, "applying the schema", err, errlen))
        goto done;
    if (!exec_simple(c, "COMMIT", "schema", err, errlen))
        goto done;
    in_tx = false;
    ok = true;
done:
    if (in_tx) {
        /* Best effort: a failed ROLLBACK means the connection is gone anyway. */
        PQclear(PQexec(c, "ROLLBACK"));
    }
    buf_free(&sql);
    free(qt);
    free(qf);
    free(qc);
    free(lf);
    free(qr);
    free(qri);
    free(qg);
    free(qw);
    return ok;
}

/* The three tables as the catalog rows of the shape queries number them (ShapeKind). */
#define SHAPE_TABLES                                                                               \
    "(VALUES (0, pg_catalog.to_regclass($1), '{id}'::pg_catalog.name[]), "                         \
    "(1, pg_catalog.to_regclass($2), '{id,job}'), (2, pg_catalog.to_regclass($3), '{job}')) "      \
    "AS t(n, oid, keycols)"

/* An index ON CONFLICT (the key) can infer: unique, valid, not partial, no expressions,
 * and its key columns (not the INCLUDE ones) are the key's, in any order. */
#define SHAPE_KEY_INDEX                                                                            \
    "i.indrelid = t.oid AND i.indisunique AND i.indisvalid AND i.indpred IS NULL "                 \
    "AND i.indexprs IS NULL AND ARRAY(SELECT a.attname "                                           \
    "FROM pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "                          \
    "JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "           \
    "WHERE k.ord <= i.indnkeyatts ORDER BY a.attname) = t.keycols"

/* One row per table: relkind, any primary key, a usable key index, and a DEFERRABLE
 * constraint on the key (ON CONFLICT refuses to run when there is one, even beside a
 * usable index). */
static const char shape_tables_sql[] =
    "SELECT t.n, c.relkind, "
    "EXISTS (SELECT FROM pg_catalog.pg_index i WHERE i.indrelid = t.oid AND i.indisprimary), "
    "EXISTS (SELECT FROM pg_catalog.pg_index i WHERE " SHAPE_KEY_INDEX " AND i.indimmediate), "
    "d.conname, d.contype = 'p' "
    "FROM " SHAPE_TABLES " LEFT JOIN pg_catalog.pg_class c ON c.oid = t.oid "
    "LEFT JOIN LATERAL (SELECT con.conname, con.contype FROM pg_catalog.pg_index i "
    "JOIN pg_catalog.pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = t.oid "
    "WHERE " SHAPE_KEY_INDEX " AND NOT i.indimmediate LIMIT 1) d ON true "
    "ORDER BY t.n";

/* One row per column of the three tables, with what ShapeColumn wants. */
static const char shape_columns_sql[] =
    "SELECT t.n, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), bt.typcategory, "
    "bt.oid = ANY ('{int2,int4,int8}'::pg_catalog.regtype[]), a.attnotnull, "
    "a.atthasdef OR a.attidentity <> '', a.attgenerated <> '', a.attidentity = 'a' "
    "FROM " SHAPE_TABLES " JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid "
    "AND a.attnum > 0 AND NOT a.attisdropped "
    "JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid "
    "JOIN pg_catalog.pg_type bt ON bt.oid = COALESCE(NULLIF(ty.typbasetype, 0), ty.oid) "
    "ORDER BY t.n, a.attnum";

static char *shape_quote(void *ud, const char *ident)
{
    return db_quote_ident(ud, ident);
}

static bool is_true(const PGresult *r, int row, int col)
{
    return !PQgetisnull(r, row, col) && strcmp(PQgetvalue(r, row, col), "t") == 0;
}

/* Row r's table number, checked: a bad one would index out of the arrays. */
static int shape_row_kind(const PGresult *r, int row)
{
    const char *v = PQgetvalue(r, row, 0);
    return v[0] >= '0' && v[0] < '0' + SHAPE_NKINDS && v[1] == '\0' ? v[0] - '0' : -1;
}

bool db_check_shape(PGconn *c, const DbNames *names, const char *key_type, char *err, size_t errlen)
{
    bool ok = false;
    PGresult *rt = NULL, *rc = NULL;
    ShapeColumn *cols = NULL;
    ShapeTable tables[SHAPE_NKINDS];
    char *q[SHAPE_NKINDS] = {NULL, NULL, NULL};
    memset(tables, 0, sizeof tables);

    q[SHAPE_TARGET] = db_quote_ident(c, names->target);
    q[SHAPE_FAILURES] = db_quote_ident(c, names->failures);
    q[SHAPE_CHECKPOINTS] = db_quote_ident(c, names->checkpoints);
    if (q[0] == NULL || q[1] == NULL || q[2] == NULL) {
        db_error(c, NULL, "quoting table names", err, errlen);
        goto done;
    }
    const char *params[SHAPE_NKINDS] = {q[0], q[1], q[2]};
    rt = exec_params(c, shape_tables_sql, SHAPE_NKINDS, params, PGRES_TUPLES_OK,
                     "reading the catalog", err, errlen);
    if (rt == NULL)
        goto done;
    rc = exec_params(c, shape_columns_sql, SHAPE_NKINDS, params, PGRES_TUPLES_OK,
                     "reading the catalog", err, errlen);
    if (rc == NULL)
        goto done;
    if (PQntuples(rt) != SHAPE_NKINDS || PQnfields(rt) != 6 || PQnfields(rc) != 9)
        goto unexpected;
    for (int i = 0; i < SHAPE_NKINDS; i++) {
        ShapeTable *t = &tables[i];
        if (shape_row_kind(rt, i) != i)
            goto unexpected;
        t->qname = q[i];
        t->relkind = PQgetisnull(rt, i, 1) ? '\0' : PQgetvalue(rt, i, 1)[0];
        t->has_pk = is_true(rt, i, 2);
        t->has_key = is_true(rt, i, 3);
        t->deferrable_key = PQgetisnull(rt, i, 4) ? NULL : PQgetvalue(rt, i, 4);
        t->deferrable_is_pk = is_true(rt, i, 5);
    }
    int ncols = PQntuples(rc);
    cols = calloc(ncols > 0 ? (size_t)ncols : 1, sizeof *cols);
    if (cols == NULL) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (int row = 0; row < ncols; row++) {
        int k = shape_row_kind(rc, row);
        /* Rows come ordered by table: each table's columns are one run of the array. */
        if (k < 0 || (row > 0 && k < shape_row_kind(rc, row - 1)))
            goto unexpected;
        ShapeColumn *col = &cols[row];
        col->name = PQgetvalue(rc, row, 1);
        col->type = PQgetvalue(rc, row, 2);
        col->category = PQgetvalue(rc, row, 3)[0];
        col->is_integer = is_true(rc, row, 4);
        col->not_null = is_true(rc, row, 5);
        col->has_default = is_true(rc, row, 6);
        col->generated = is_true(rc, row, 7);
        col->identity_always = is_true(rc, row, 8);
        if (tables[k].ncols++ == 0)
            tables[k].cols = col;
    }
    ok = shape_check(tables, key_type, shape_quote, c, err, errlen) == 0;
    goto done;
unexpected:
    snprintf(err, errlen, "reading the catalog: unexpected answer");
done:
    free(cols);
    PQclear(rt);
    PQclear(rc);
    for (int i = 0; i < SHAPE_NKINDS; i++)
        free(q[i]);
    return ok;
}

/* head + the quoted table name + tail, malloc'd; NULL with a reason in err. */
static char *table_sql(PGconn *c, const char *table, const char *head, const char *tail, char *err,
                       size_t errlen)
{
    char *q = db_quote_ident(c, table);
    if (q == NULL) {
        db_error(c, NULL, "quoting a table name", err, errlen);
        return NULL;
    }
    Buf b;
    buf_init(&b, SQL_MAX);
    if (!buf_puts(&b, head) || !buf_puts(&b, q) || !buf_puts(&b, tail)) {
        snprintf(err, errlen, "out of memory");
        buf_free(&b);
    }
    free(q);
    return b.data; /* NULL after buf_free */
}

static char *checkpoint_sql(PGconn *c, const DbNames *names, const char *head, const char *tail,
                            char *err, size_t errlen)
{
    return table_sql(c, names->checkpoints, head, tail, err, errlen);
}

bool db_load_checkpoint(PGconn *c, const DbNames *names, const char *job, char **position_out,
                        char **paging_out, char **since_out, char *err, size_t errlen)
{
    bool ok = false;
    PGresult *r = NULL;
    *position_out = NULL;
    *paging_out = NULL;
    *since_out = NULL;
    char *sql = checkpoint_sql(c, names, "SELECT position, paging, started_at FROM ",
                               " WHERE job = $1", err, errlen);
    if (sql == NULL)
        return false;
    const char *params[1] = {job};
    r = exec_params(c, sql, 1, params, PGRES_TUPLES_OK, "reading the checkpoint", err, errlen);
    if (r == NULL)
        goto done;
    if (PQntuples(r) == 1) {
        if (!PQgetisnull(r, 0, 0) && (*position_out = strdup(PQgetvalue(r, 0, 0))) == NULL)
            goto oom;
        if (!PQgetisnull(r, 0, 1) && (*paging_out = strdup(PQgetvalue(r, 0, 1))) == NULL)
            goto oom;
        if (!PQgetisnull(r, 0, 2) && (*since_out = strdup(PQgetvalue(r, 0, 2))) == NULL)
            goto oom;
    }
    ok = true;
    goto done;
oom:
    snprintf(err, errlen, "out of memory");
    free(*position_out);
    free(*paging_out);
    free(*since_out);
    *position_out = NULL;
    *paging_out = NULL;
    *since_out = NULL;
done:
    PQclear(r);
    free(sql);
    return ok;
}

bool db_reopen_checkpoint(PGconn *c, const DbNames *names, const char *job, bool *was_finished,
                          char *err, size_t errlen)
{
    *was_finished = false;
    char *sql = checkpoint_sql(c, names, "UPDATE ",
                               " SET finished = false, updated_at = now() WHERE job = $1 AND "
                               "finished",
                               err, errlen);
    if (sql == NULL)
        return false;
    const char *params[1] = {job};
    PGresult *r =
        exec_params(c, sql, 1, params, PGRES_COMMAND_OK, "reopening the checkpoint", err, errlen);
    bool ok = r != NULL;
    *was_finished = ok && strcmp(PQcmdTuples(r), "0") != 0;
    PQclear(r);
    free(sql);
    return ok;
}

bool db_reset_checkpoint(PGconn *c, const DbNames *names, const char *job, char *err, size_t errlen)
{
    char *sql = checkpoint_sql(c, names, "DELETE FROM ", " WHERE job = $1", err, errlen);
    if (sql == NULL)
        return false;
    const char *params[1] = {job};
    PGresult *r =
        exec_params(c, sql, 1, params, PGRES_COMMAND_OK, "resetting the checkpoint", err, errlen);
    bool ok = r != NULL;
    PQclear(r);
    free(sql);
    return ok;
}

bool db_count_failures(PGconn *c, const DbNames *names, const char *job, const char *reason,
                       long long *count, char *err, size_t errlen)
{
    bool ok = false;
    PGresult *r = NULL;
    *count = 0;
    char *q = db_quote_ident(c, names->failures);
    if (q == NULL) {
        db_error(c, NULL, "quoting the failures table name", err, errlen);
        return false;
    }
    Buf sql;
    buf_init(&sql, SQL_MAX);
    /* A NULL reason counts them all. The statement is unnamed, so it is planned with the
     * values at hand: the IS NULL test folds away and the (job, id) key serves the scan. */
    if (!buf_printf(&sql,
                    "SELECT count(*) FROM %s WHERE job = $1 AND ($2::text IS NULL OR reason = $2)",
                    q)) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    const char *params[2] = {job, reason};
    r = exec_params(c, sql.data, 2, params, PGRES_TUPLES_OK, "counting failures", err, errlen);
    if (r == NULL)
        goto done;
    char *end = NULL;
    const char *v = PQntuples(r) == 1 && PQnfields(r) == 1 ? PQgetvalue(r, 0, 0) : "";
    long long n = strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0' || n < 0) {
        snprintf(err, errlen, "counting failures: unexpected answer");
        goto done;
    }
    *count = n;
    ok = true;
done:
    PQclear(r);
    buf_free(&sql);
    free(q);
    return ok;
}

static char *runs_sql(PGconn *c, const DbNames *names, const char *head, const char *tail,
                      char *err, size_t errlen)
{
    return table_sql(c, names->runs, head, tail, err, errlen);
}

bool db_run_begin(PGconn *c, const DbNames *names, const DbRunStart *rs, long long *run_id,
                  char *err, size_t errlen)
{
    bool ok = false;
    char pid[32];
    *run_id = 0;
    char *sql = runs_sql(c, names, "INSERT INTO ",
                         " (job, command, host, pid, version, db_pid, checkpoint_from, "
                         "checkpoint_to) VALUES ($1, $2, $3, $4, $5, pg_catalog.pg_backend_pid(), "
                         "$6, $6) RETURNING run_id",
                         err, errlen);
    if (sql == NULL)
        return false;
    snprintf(pid, sizeof pid, "%ld", rs->pid);
    const char *params[6] = {rs->job, rs->command, rs->host, pid, rs->version, rs->checkpoint_from};
    PGresult *r = exec_params(c, sql, 6, params, PGRES_TUPLES_OK, "recording the run", err, errlen);
    if (r == NULL)
        goto done;
    if (PQntuples(r) != 1 || (*run_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10)) <= 0) {
        snprintf(err, errlen, "recording the run: unexpected answer");
        goto done;
    }
    ok = true;
done:
    PQclear(r);
    free(sql);
    return ok;
}

bool db_run_end(PGconn *c, const DbNames *names, long long run_id, int exit_status,
                const char *state, long long requests, long long retries, char *err, size_t errlen)
{
    char id[32], code[16], req[32], ret[32];
    /* The rate counts the outcomes the flushes committed, over the run's whole life. */
    char *sql = runs_sql(c, names, "UPDATE ",
                         " SET ended_at = now(), updated_at = now(), exit_status = $2, "
                         "state = $3, requests = $4, retries = $5, ids_per_s = "
                         "(rows_loaded + failures + kept) / greatest(extract(epoch FROM now() - "
                         "started_at)::float8, 0.001) WHERE run_id = $1",
                         err, errlen);
    if (sql == NULL)
        return false;
    snprintf(id, sizeof id, "%lld", run_id);
    snprintf(code, sizeof code, "%d", exit_status);
    snprintf(req, sizeof req, "%lld", requests);
    snprintf(ret, sizeof ret, "%lld", retries);
    const char *params[5] = {id, code, state, req, ret};
    PGresult *r =
        exec_params(c, sql, 5, params, PGRES_COMMAND_OK, "closing the run's record", err, errlen);
    bool ok = r != NULL;
    PQclear(r);
    free(sql);
    return ok;
}

/* The planner's row estimate for sql ("Plan Rows" of the top node), or -1. */
static double plan_rows(PGconn *c, const char *sql, int n, const char *const *params, char *err,
                        size_t errlen)
{
    Buf b;
    buf_init(&b, SQL_MAX);
    double rows = -1;
    if (!buf_printf(&b, "EXPLAIN (FORMAT JSON) %s", sql)) {
        snprintf(err, errlen, "out of memory");
        buf_free(&b);
        return -1;
    }
    PGresult *r =
        exec_params(c, b.data, n, params, PGRES_TUPLES_OK, "estimating the IDs", err, errlen);
    const char *plan = r && PQntuples(r) >= 1 ? PQgetvalue(r, 0, 0) : NULL;
    const char *at = plan ? strstr(plan, "\"Plan Rows\":") : NULL;
    if (at != NULL) {
        char *end;
        double v = strtod(at + 12, &end);
        if (end != at + 12 && v >= 0)
            rows = v;
    }
    if (r != NULL && rows < 0)
        snprintf(err, errlen, "estimating the IDs: no row estimate in the plan");
    PQclear(r);
    buf_free(&b);
    return rows;
}

bool db_estimate_ids(PGconn *c, const DbNames *names, const char *where, const char *after,
                     long long *count_out, bool *exact_out, char *err, size_t errlen)
{
    bool ok = false;
    Buf sel, sql;
    buf_init(&sel, SQL_MAX);
    buf_init(&sql, SQL_MAX);
    PGresult *r = NULL;
    *count_out = -1;
    *exact_out = false;
    char *qt = db_quote_ident(c, names->source);
    char *qk = db_quote_ident(c, names->key);
    const char *params[1] = {after};
    int np = after ? 1 : 0;
    if (qt == NULL || qk == NULL) {
        db_error(c, NULL, "quoting the source names", err, errlen);
        goto done;
    }
    /* The same conditions as the source's pages (source.c build_sql), filter on lines of
     * its own. */
    bool built = buf_printf(&sel, "SELECT 1 FROM %s WHERE %s.%s %s", qt, qt, qk,
                            after ? "> $1" : "IS NOT NULL");
    if (built && where != NULL && *where != '\0')
        built = buf_printf(&sel, " AND (\n%s\n)", where);
    if (!built || !buf_printf(&sql, "SELECT 1 FROM %s", qt)) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    double table = plan_rows(c, sql.data, 0, NULL, err, errlen);
    if (table < 0)
        goto done;
    if (table <= DB_ESTIMATE_COUNT_MAX) {
        /* A small table is counted; the LIMIT bounds the cost of a planner that was
         * wrong about its size. */
        buf_reset(&sql);
        if (!buf_printf(&sql, "SELECT count(*) FROM (%s LIMIT %d) AS pgenrich_n", sel.data,
                        10 * DB_ESTIMATE_COUNT_MAX)) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        r = exec_params(c, sql.data, np, params, PGRES_TUPLES_OK, "counting the IDs", err, errlen);
        if (r == NULL)
            goto done;
        long long n = PQntuples(r) == 1 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
        if (n >= 0 && n < 10 * DB_ESTIMATE_COUNT_MAX) {
            *count_out = n;
            *exact_out = true;
            ok = true;
            goto done;
        }
    }
    double rows = plan_rows(c, sel.data, np, params, err, errlen);
    if (rows < 0)
        goto done;
    *count_out = (long long)rows;
    ok = true;
done:
    PQclear(r);
    buf_free(&sel);
    buf_free(&sql);
    free(qt);
    free(qk);
    return ok;
}
