/* mockdata: the deterministic entities behind pgenrich-mockapi, derived from the ID bytes
 * alone, and how they are written: JSON in the shapes of API.md sections 1-3, the COPY text
 * line of `pgenrich-mockapi --expect`, plus the strict ID decoder and the batch body parser.
 * Pure: no I/O and no global state; only the batch parser allocates. */
#ifndef PGENRICH_MOCKDATA_H
#define PGENRICH_MOCKDATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "compat.h"

/* Longest decoded ID the server accepts (longer answers 400). */
#define MOCK_ID_MAX 4096
/* Bytes of text storage inside a MockEntity. */
#define MOCK_STORE_SIZE 1024

/* What the primary provider says about an ID. Shares over many IDs: NOT_FOUND 2 %,
 * NO_LOCATION 3 %, BAD 1 %, FOUND 94 % (of which 80 % of all IDs are ordinary). */
typedef enum MockOutcome {
    MOCK_FOUND,       /* 200 with a location: the worker loads the row */
    MOCK_NO_LOCATION, /* 200, location null or missing: a miss */
    MOCK_NOT_FOUND,   /* 404 */
    MOCK_BAD          /* 200 but invalid: the worker must record bad_response */
} MockOutcome;

/* The text columns, in the order of the standardized row. */
typedef enum MockField {
    MOCK_LABEL,
    MOCK_GEO_LABEL,
    MOCK_STREET,
    MOCK_CITY,
    MOCK_POSTAL,
    MOCK_COUNTRY,
    MOCK_FIELD_COUNT
} MockField;

/* Which tricky case shaped the values of a FOUND entity. */
typedef enum MockVariant {
    MOCK_V_ORDINARY, /* compact ASCII, the common case the benchmark measures */
    MOCK_V_TAB,
    MOCK_V_NEWLINE,
    MOCK_V_CR,
    MOCK_V_BACKSLASH,
    MOCK_V_QUOTE,
    MOCK_V_APOSTROPHE,
    MOCK_V_EMOJI,       /* 4-byte UTF-8 */
    MOCK_V_SCRIPT,      /* non-Latin scripts, combining marks */
    MOCK_V_BACKSLASH_N, /* the two characters \N, COPY's NULL marker, as real text */
    MOCK_V_EMPTY,       /* "" values (not NULL) */
    MOCK_V_NULLS,       /* NULL values (written null or left out, see MOCK_P_NULL_MISSING) */
    MOCK_V_CONTROL,     /* \b \f \v and other control characters */
    MOCK_V_BOUNDARY,    /* latitude +-90, longitude +-180, or 0/0 */
    MOCK_V_TINY,        /* coordinates that print in exponent notation */
    MOCK_V_NO_COORDS,   /* location present, latitude/longitude NULL */
    MOCK_V_LONG,        /* a label of several hundred bytes */
    MOCK_V_COUNT
} MockVariant;

/* Why a BAD entity is invalid. */
typedef enum MockBadKind {
    MOCK_BAD_NONE,
    MOCK_BAD_NUL_LABEL,     /* label holds \u0000 */
    MOCK_BAD_LAT_RANGE,     /* latitude outside [-90, 90] */
    MOCK_BAD_LON_RANGE,     /* longitude outside [-180, 180] */
    MOCK_BAD_UTF8,          /* raw bytes in the label that are not UTF-8 */
    MOCK_BAD_LABEL_TYPE,    /* label is a JSON number */
    MOCK_BAD_LOCATION_TYPE, /* location (secondary: address) is a JSON array */
    MOCK_BAD_KIND_COUNT
} MockBadKind;

/* Presentation flags: how an entity is written, never what the worker must load. */
enum {
    MOCK_P_ID_NUMBER = 1u << 0,       /* "id" as a JSON number (only for canonical digit IDs) */
    MOCK_P_COORD_STRING = 1u << 1,    /* coordinates as numeric strings */
    MOCK_P_NULL_MISSING = 1u << 2,    /* NULLs and a missing location: key left out, not null */
    MOCK_P_EXTRA_KEYS = 1u << 3,      /* unknown keys, nested objects and arrays */
    MOCK_P_DUP_KEYS = 1u << 4,        /* a decoy value first, the real one last (last wins) */
    MOCK_P_REORDER = 1u << 5,         /* keys in an unusual order */
    MOCK_P_UNICODE_ESCAPES = 1u << 6, /* non-ASCII as \uXXXX (surrogate pairs), '/' as \/ */
    MOCK_P_PRETTY = 1u << 7           /* newlines and indentation */
};

/* One entity. Text pointers point into static tables or into store, so a MockEntity must
 * not be copied by value (copy the ID and call mockdata_entity again instead).
 * For FOUND the fields are what the worker must load after JSON decoding; for BAD they are
 * the invalid values as served; for NO_LOCATION only the label is set; NOT_FOUND has none. */
typedef struct MockEntity {
    MockOutcome outcome;
    MockVariant variant;
    MockBadKind bad;
    unsigned present;                   /* MOCK_P_* */
    const char *text[MOCK_FIELD_COUNT]; /* NULL = SQL NULL */
    size_t len[MOCK_FIELD_COUNT];       /* byte lengths (a BAD label may hold a NUL) */
    bool has_lat, has_lon;              /* false = SQL NULL */
    double lat, lon;
    size_t store_used;
    char store[MOCK_STORE_SIZE];
} MockEntity;

/* A 64-bit hash of the ID bytes (FNV-1a, then a splitmix64 finalizer). */
uint64_t mockdata_hash(const char *id, size_t len);

/* The splitmix64 finalizer: a bijective mix of 64 bits; handy for counter-based PRNGs. */
uint64_t mockdata_mix64(uint64_t x);

/* Fill e with the entity for id (len bytes, any bytes). Deterministic: the same bytes
 * always give the same entity, on every platform. */
void mockdata_entity(const char *id, size_t len, MockEntity *e);

/* "found", "no_location", "not_found" or "bad_response" (the --expect outcome names). */
const char *mockdata_outcome_name(MockOutcome o);

/* The writers below follow snprintf: they write at most cap bytes including a terminating
 * NUL (when cap > 0) and return the length the whole output needs, without the NUL; the
 * output is complete only if the result is < cap. id is echoed JSON-escaped. */

/* Section 1 body: the entity object for FOUND, NO_LOCATION and BAD; for NOT_FOUND the
 * 404 body {"id":...,"error":{"status":404,"message":...}}, which is also the batch
 * element for a missing ID. */
size_t mockdata_json_primary(const MockEntity *e, const char *id, size_t idlen, char *out,
                             size_t cap);

/* Section 3 body: {"results":[{...}]} for FOUND and BAD, {"results":[]} otherwise. */
size_t mockdata_json_secondary(const MockEntity *e, const char *id, size_t idlen, char *out,
                               size_t cap);

/* s (len bytes) as a quoted, escaped JSON string. Control
 * characters become \b \f \n \r \t or \u00XX; other bytes pass unchanged. */
size_t mockdata_json_string(const char *s, size_t len, char *out, size_t cap);

/* The --expect line for id, newline included: id, outcome, label, geo_label,
 * street_address, city_label, postal_code, country_label, latitude, longitude in COPY
 * text format (tab-separated, \N for NULL, "%.17g" for coordinates). All value columns are
 * \N unless the outcome is found. */
size_t mockdata_expect_line(const MockEntity *e, const char *id, size_t idlen, char *out,
                            size_t cap);

/* COPY text escaping of one value (backslash, \b \f \n \r \t \v; other bytes as they are,
 * as PostgreSQL's COPY TO writes them). */
size_t mockdata_copy_escape(const char *s, size_t len, char *out, size_t cap);

/* Decode one COPY text field (the line without its newline): \\ \b \f \n \r \t \v, octal
 * \NNN, hex \xHH; any other escaped character stands for itself. out needs len bytes; the
 * decoded length goes to *outlen. Returns false for the NULL marker \N (out untouched). */
bool mockdata_copy_decode(const char *in, size_t len, char *out, size_t *outlen) WUR;

/* Strictly decode a percent-encoded ID (a path segment or a query value) as API.md asks:
 * unreserved characters (ALPHA DIGIT - . _ ~) must be literal and every other byte %XX
 * (hex digits of either case); an ID made only of dots must have every dot encoded, and
 * no other unreserved character may be encoded. The result must be valid UTF-8 without
 * NUL and at most cap bytes (cap >= MOCK_ID_MAX is enough). The empty ID is valid.
 * Returns false, *outlen untouched, for anything else. */
bool mockdata_id_decode(const char *raw, size_t rawlen, char *out, size_t cap, size_t *outlen) WUR;

/* true if s (len bytes) is valid UTF-8 (no overlongs, surrogates or values > U+10FFFF). */
bool mockdata_utf8_valid(const char *s, size_t len);

/* Per-ID quirks of pgenrich-mockapi, in the order of the --expect tag column. The order is
 * also the salt: append new quirks, never reorder, or every existing pick changes. */
typedef enum MockQuirk {
    MOCK_Q_DOWN,      /* primary 503 */
    MOCK_Q_MISS,      /* primary answers a found entity as a miss */
    MOCK_Q_CTYPE,     /* odd Content-Type on 200 */
    MOCK_Q_PAD,       /* 200 body padded past a size cap */
    MOCK_Q_NEST,      /* 200 body nested deeper than a parser should accept */
    MOCK_Q_FORBIDDEN, /* primary 403 */
    MOCK_Q_SLOW,      /* primary 503 with a long Retry-After */
    MOCK_Q_COUNT
} MockQuirk;

/* The --expect tag of q ("down", "miss", "ctype", "pad", "nest", "forbidden", "slow"). */
const char *mockdata_quirk_name(MockQuirk q);

/* Is id (len bytes) picked for q when the quirk's modulus is mod? A hash of the ID, salted
 * per quirk, is 0 modulo mod: about 1/mod of the IDs, independently for each quirk and of
 * the entity; mod 1 picks every ID, mod 0 none. */
bool mockdata_quirk_picked(MockQuirk q, unsigned mod, const char *id, size_t len);

/* The --expect tag column for id: the names of the quirks that pick it (mods[q] is the
 * modulus of quirk q, 0 = off), comma-separated in MockQuirk order, no newline; empty when
 * none does. Follows snprintf like the writers above. */
size_t mockdata_quirk_tags(const unsigned mods[MOCK_Q_COUNT], const char *id, size_t len, char *out,
                           size_t cap);

/* An error body with the ID, {"id":...,"error":{"status":N,"message":"..."}}, as the 404 of
 * section 1 has; message is written as it is (no escaping: pass plain ASCII). Follows
 * snprintf like the writers above. */
size_t mockdata_json_id_error(const char *id, size_t idlen, unsigned status, const char *message,
                              char *out, size_t cap);

/* The IDs of a batch request body. */
typedef struct MockIdList {
    char *data;    /* the decoded IDs back to back */
    size_t *start; /* offset of each ID in data */
    size_t *len;   /* length of each ID */
    size_t count;
} MockIdList;

typedef enum MockBatchStatus {
    MOCK_BATCH_OK,
    MOCK_BATCH_BAD,      /* not {"ids":[strings...], ...}: 400 */
    MOCK_BATCH_TOO_MANY, /* more than max_ids: 413 */
    MOCK_BATCH_NOMEM
} MockBatchStatus;

/* Parse a batch body {"ids": ["a", ...], "select": "..."}: other keys are skipped (any
 * JSON value), duplicate keys: the last wins. Each ID must be valid UTF-8 without NUL and
 * at most MOCK_ID_MAX bytes. On MOCK_BATCH_OK the caller owns *out: release it with
 * mockdata_idlist_free. On failure *out holds nothing and err (if errlen > 0) a reason. */
MockBatchStatus mockdata_parse_batch(const char *body, size_t len, size_t max_ids, MockIdList *out,
                                     char *err, size_t errlen) WUR;

/* Release what a MockIdList owns and empty it; safe on an emptied or zeroed list. */
void mockdata_idlist_free(MockIdList *l);

#endif
