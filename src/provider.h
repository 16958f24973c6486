/* provider: how one lookup API is addressed and read. Builds the request URL from a
 * template with the ID percent-encoded (RFC 3986), and maps a JSON answer onto the
 * standardized row with JSON Pointers (RFC 6901), validating types and ranges. Pure. */
#ifndef PGENRICH_PROVIDER_H
#define PGENRICH_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include "buf.h"
#include "compat.h"

struct json_object;

/* The standardized columns a provider fills, in target-table order after `id`. */
typedef enum Column {
    COL_LABEL,
    COL_GEO_LABEL,
    COL_STREET_ADDRESS,
    COL_CITY_LABEL,
    COL_POSTAL_CODE,
    COL_COUNTRY_LABEL,
    COL_LATITUDE,
    COL_LONGITUDE,
    COL_COUNT
} Column;
#define COL_TEXT_COUNT COL_LATITUDE /* columns before this one are text */

/* Column names as in the target table ("label", "geo_label", ...). */
extern const char *const provider_column_names[COL_COUNT];

typedef struct ProviderMap {
    /* Pointer to the object whose absence (or null) means "entity exists, no location":
     * a miss. When present it must be a JSON object, else the answer is bad. */
    const char *presence;
    /* Pointer per column; NULL leaves the column NULL. A missing or null value is NULL. */
    const char *ptr[COL_COUNT];
} ProviderMap;

/* API.md section 1 (primary) and section 3 (secondary) mappings. */
extern const ProviderMap provider_map_primary;
extern const ProviderMap provider_map_secondary;

/* Append id (len bytes, any bytes) percent-encoded: only RFC 3986 unreserved characters
 * (ALPHA DIGIT - . _ ~) pass unchanged, every other byte becomes %XX (uppercase hex), and
 * an ID made only of dots has its dots encoded as %2E so that no client folds it as a dot
 * segment. An empty id appends nothing (whether to send it is the caller's call).
 * Returns false on buffer cap (or out of memory), leaving out as it was. */
bool provider_encode_id(Buf *out, const char *id, size_t len) WUR;

/* Check a URL template: it must hold "{id}" at least once and no other '{' or '}', and no
 * space or control character (a URL never holds them raw). On failure writes a one-line
 * reason into err (err may be NULL). */
bool provider_template_check(const char *tmpl, char *err, size_t errlen) WUR;

/* Append the template with every "{id}" replaced by the encoded id.
 * The template must have passed provider_template_check. All or nothing, as above. */
bool provider_build_url(Buf *out, const char *tmpl, const char *id, size_t id_len) WUR;

typedef enum MapResult { MAP_FOUND, MAP_MISS, MAP_BAD } MapResult;

/* A mapped answer. Text pointers borrow from doc and live until provider_row_free. */
typedef struct ProviderRow {
    const char *text[COL_TEXT_COUNT]; /* NULL = SQL NULL; never holds a NUL byte */
    size_t len[COL_TEXT_COUNT];
    double coord[2]; /* [0] latitude, [1] longitude */
    bool has_coord[2];
    struct json_object *doc; /* owned */
} ProviderRow;

/* Parse body (len bytes, not NUL-terminated) as JSON, at most max_depth levels deep
 * (counted as json-c does: the top-level object is level 1 and every value inside a
 * container one more, scalars included; max_depth < 1 is bad), and map it with m.
 * The whole body must be one JSON value (whitespace around it only) in strict UTF-8 (no
 * overlong forms or encoded surrogates), with no NUL byte, no lone surrogate escape and no
 * \u0000 in an object key, also in keys and values the mapping ignores; the top level must
 * be an object. Pointers are RFC 6901: a missing key, an index past the end or a null on
 * the way gives a NULL column, but a step into a string, number or boolean (or a name used
 * on an array) makes the answer bad. The presence pointer decides first: absent or null
 * is MAP_MISS without looking at the columns. Text columns must be strings (valid UTF-8,
 * no NUL); coordinates JSON numbers or numeric strings ([+-]?(d+[.d*]|.d+)([eE][+-]?d+)?),
 * finite, latitude in [-90, 90] and longitude in [-180, 180]; duplicate keys: the last
 * wins. *row is overwritten, never freed, on entry.
 * MAP_FOUND fills *row (free with provider_row_free); MAP_MISS and MAP_BAD leave *row
 * empty (freeing it is harmless). On MAP_BAD err holds a short one-line reason (under 100
 * characters, never a copy of the body); otherwise err is "". err may be NULL. */
MapResult provider_map(const ProviderMap *m, const char *body, size_t len, int max_depth,
                       ProviderRow *row, char *err, size_t errlen);

/* A parser for answers at most max_depth levels deep, for provider_map_with: the same
 * json-c tokener serves answer after answer instead of one made and freed for each.
 * NULL when max_depth < 1 or out of memory. */
typedef struct ProviderParser ProviderParser;
ProviderParser *provider_parser_new(int max_depth);
void provider_parser_free(ProviderParser *pp); /* NULL is fine */

/* provider_map with pp's tokener and depth limit: the same result for the same answer. */
MapResult provider_map_with(ProviderParser *pp, const ProviderMap *m, const char *body, size_t len,
                            ProviderRow *row, char *err, size_t errlen);

/* Release the document and empty the row; NULL and an empty row are fine. */
void provider_row_free(ProviderRow *row);

/* Append at most max bytes of body as a printable, single-line excerpt (bytes outside
 * printable ASCII become '?', one '?' per byte), for failure records. All or nothing. */
bool provider_excerpt(Buf *out, const char *body, size_t len, size_t max) WUR;

#endif
