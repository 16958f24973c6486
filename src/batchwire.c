/* batchwire: the batch body out, the batch answer in. The answer is read with json-c as a
 * whole, then every result element is written back out on its own and mapped with
 * provider_map, so that an element is judged by exactly the rules of a single answer and
 * one bad element (invalid UTF-8, a NUL, a wrong type) spoils only its own ID. */
#include "batchwire.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen > 0)
        snprintf(err, errlen, "%s", msg);
}

bool batchwire_body(Buf *out, const BatchId *ids, size_t n)
{
    size_t mark = out->len;
    bool ok = buf_puts(out, "{\"ids\":[");
    for (size_t i = 0; ok && i < n; i++) {
        ok = (i == 0 || buf_putc(out, ',')) && buf_putc(out, '"');
        for (size_t k = 0; ok && k < ids[i].len; k++) {
            unsigned char c = (unsigned char)ids[i].id[k];
            ok = c == '"' || c == '\\'   ? buf_putc(out, '\\') && buf_putc(out, (char)c)
                 : c < 0x20 || c == 0x7F ? buf_printf(out, "\\u%04x", c)
                                         : buf_putc(out, (char)c);
        }
        ok = ok && buf_putc(out, '"');
    }
    ok = ok && buf_puts(out, "],\"select\":\"id,label,location\"}");
    if (!ok)
        buf_truncate(out, mark);
    return ok;
}

/* Parse the whole of body as one strict JSON value, depth levels at most; NULL if it is
 * not one (trailing bytes other than whitespace included). Caller owns the result. */
static json_object *parse_all(const char *body, size_t len, int depth)
{
    if (len > INT32_MAX || depth < 1)
        return NULL;
    json_tokener *tok = json_tokener_new_ex(depth);
    if (tok == NULL)
        return NULL;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *doc = json_tokener_parse_ex(tok, body, (int)len);
    size_t used = json_tokener_get_parse_end(tok);
    if (doc == NULL || json_tokener_get_error(tok) != json_tokener_success) {
        json_object_put(doc);
        doc = NULL;
    } else {
        for (; used < len; used++) {
            char c = body[used];
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                json_object_put(doc);
                doc = NULL;
                break;
            }
        }
    }
    json_tokener_free(tok);
    return doc;
}

/* FNV-1a: spreads the asked IDs over the match table. */
static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* Open addressing over the asked IDs: slot holds index + 1, 0 is empty; same[] chains the
 * asked IDs that have the bytes of an earlier one. */
typedef struct Match {
    size_t *slot;
    size_t mask;
    size_t *same;
    const BatchId *ids;
} Match;

static bool match_init(Match *mt, const BatchId *ids, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    mt->slot = calloc(cap, sizeof *mt->slot);
    mt->same = calloc(n ? n : 1, sizeof *mt->same);
    mt->mask = cap - 1;
    mt->ids = ids;
    if (mt->slot == NULL || mt->same == NULL)
        return false;
    for (size_t i = 0; i < n; i++) {
        size_t h = (size_t)hash_bytes(ids[i].id, ids[i].len) & mt->mask;
        for (;; h = (h + 1) & mt->mask) {
            size_t k = mt->slot[h];
            if (k == 0) {
                mt->slot[h] = i + 1;
                break;
            }
            const BatchId *o = &ids[k - 1];
            if (o->len == ids[i].len && memcmp(o->id, ids[i].id, o->len) == 0) {
                while (mt->same[k - 1] != 0)
                    k = mt->same[k - 1];
                mt->same[k - 1] = i + 1;
                break;
            }
        }
    }
    return true;
}

/* The first asked index (+ 1) with these bytes, 0 if none. */
static size_t match_find(const Match *mt, const char *s, size_t n)
{
    for (size_t h = (size_t)hash_bytes(s, n) & mt->mask;; h = (h + 1) & mt->mask) {
        size_t k = mt->slot[h];
        if (k == 0)
            return 0;
        const BatchId *o = &mt->ids[k - 1];
        if (o->len == n && memcmp(o->id, s, n) == 0)
            return k;
    }
}

static void match_free(Match *mt)
{
    free(mt->slot);
    free(mt->same);
}

/* The element's id as text: a string's bytes, an integer's decimal form. False when it has
 * none usable. */
static bool element_id(json_object *el, char *num, size_t numlen, const char **id, size_t *len)
{
    json_object *v;
    if (!json_object_is_type(el, json_type_object) || !json_object_object_get_ex(el, "id", &v))
        return false;
    switch (json_object_get_type(v)) {
    case json_type_string:
        *id = json_object_get_string(v);
        *len = (size_t)json_object_get_string_len(v);
        return true;
    case json_type_int: {
        const char *t = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
        if (t == NULL)
            return false;
        snprintf(num, numlen, "%s", t);
        break;
    }
    case json_type_double: {
        double d = json_object_get_double(v);
        if (!isfinite(d) || d != floor(d) || fabs(d) >= 9007199254740992.0)
            return false;
        snprintf(num, numlen, "%.0f", d);
        if (strcmp(num, "-0") == 0)
            snprintf(num, numlen, "0");
        break;
    }
    default:
        return false;
    }
    *id = num;
    *len = strlen(num);
    return true;
}

/* Fill it from one element (its earlier contents released). */
static void read_element(const ProviderMap *m, json_object *el, ProviderParser *pp, BatchItem *it)
{
    json_object *e, *st;
    provider_row_free(&it->row);
    it->err[0] = '\0';
    it->status = 0;
    if (json_object_object_get_ex(el, "error", &e) && json_object_is_type(e, json_type_object)) {
        int64_t code = 0;
        if (json_object_object_get_ex(e, "status", &st) && json_object_is_type(st, json_type_int))
            code = json_object_get_int64(st);
        if (code >= 100 && code <= 599) {
            it->kind = BI_ERROR;
            it->status = (long)code;
        } else {
            it->kind = BI_BAD;
            set_err(it->err, sizeof it->err, "item error without a status");
        }
        return;
    }
    size_t n = 0;
    const char *text = json_object_to_json_string_length(
        el, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    if (text == NULL) {
        it->kind = BI_BAD;
        set_err(it->err, sizeof it->err, "out of memory");
        return;
    }
    switch (provider_map_with(pp, m, text, n, &it->row, it->err, sizeof it->err)) {
    case MAP_FOUND:
        it->kind = BI_FOUND;
        break;
    case MAP_MISS:
        it->kind = BI_MISS;
        break;
    case MAP_BAD:
        it->kind = BI_BAD;
        break;
    }
}

bool batchwire_parse(const ProviderMap *m, const char *body, size_t len, int max_depth,
                     const BatchId *ids, size_t n, BatchItem *items, BatchTally *t, char *err,
                     size_t errlen)
{
    json_object *doc = NULL, *results;
    Match mt = {0};
    ProviderParser *pp = NULL; /* one tokener for every result of the answer */
    bool ok = false;

    memset(items, 0, n * sizeof *items);
    memset(t, 0, sizeof *t);
    set_err(err, errlen, "");
    if (max_depth < 1) {
        set_err(err, errlen, "depth limit below 1");
        goto failed;
    }
    doc = parse_all(body, len, max_depth > INT32_MAX - 2 ? INT32_MAX : max_depth + 2);
    if (doc == NULL) {
        set_err(err, errlen, "not JSON, or nested too deep");
        goto failed;
    }
    if (!json_object_is_type(doc, json_type_object) ||
        !json_object_object_get_ex(doc, "results", &results) ||
        !json_object_is_type(results, json_type_array)) {
        set_err(err, errlen, "no results array");
        goto failed;
    }
    if (!match_init(&mt, ids, n) || (pp = provider_parser_new(max_depth)) == NULL) {
        set_err(err, errlen, "out of memory");
        goto failed;
    }
    size_t count = json_object_array_length(results);
    for (size_t i = 0; i < count; i++) {
        json_object *el = json_object_array_get_idx(results, i);
        char num[64];
        const char *id;
        size_t idlen;
        if (!element_id(el, num, sizeof num, &id, &idlen)) {
            t->unidentified++;
            continue;
        }
        size_t k = match_find(&mt, id, idlen);
        if (k == 0) {
            t->unasked++;
            continue;
        }
        if (items[k - 1].kind != BI_MISSING)
            t->duplicates++;
        for (; k != 0; k = mt.same[k - 1])
            read_element(m, el, pp, &items[k - 1]);
    }
    for (size_t i = 0; i < n; i++) {
        switch (items[i].kind) {
        case BI_MISSING:
            t->missing++;
            break;
        case BI_FOUND:
            t->found++;
            break;
        case BI_MISS:
            t->misses++;
            break;
        case BI_BAD:
            t->bad++;
            break;
        case BI_ERROR:
            t->errors++;
            break;
        }
    }
    ok = true;
failed:
    if (!ok) {
        batchwire_items_free(items, n);
        memset(t, 0, sizeof *t);
        t->missing = n;
    }
    match_free(&mt);
    provider_parser_free(pp);
    json_object_put(doc);
    return ok;
}

bool batchwire_job(const char *body, size_t len, char *job, size_t cap)
{
    json_object *doc = parse_all(body, len, 4), *v;
    bool ok = false;
    if (doc != NULL && json_object_is_type(doc, json_type_object) &&
        json_object_object_get_ex(doc, "job", &v) && json_object_is_type(v, json_type_string)) {
        const char *s = json_object_get_string(v);
        size_t n = (size_t)json_object_get_string_len(v);
        ok = n > 0 && n <= BATCHWIRE_JOB_MAX && n < cap;
        for (size_t i = 0; ok && i < n; i++)
            ok = s[i] > 0x20 && s[i] < 0x7F;
        if (ok) {
            memcpy(job, s, n);
            job[n] = '\0';
        }
    }
    json_object_put(doc);
    return ok;
}

bool batchwire_poll_url(Buf *out, const char *tmpl, const char *job)
{
    size_t mark = out->len;
    bool ok = true;
    for (const char *p = tmpl; ok && *p;) {
        if (strncmp(p, "{job}", 5) == 0) {
            ok = provider_encode_id(out, job, strlen(job));
            p += 5;
        } else {
            ok = buf_putc(out, *p++);
        }
    }
    if (!ok)
        buf_truncate(out, mark);
    return ok;
}

void batchwire_items_free(BatchItem *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        provider_row_free(&items[i].row);
}
