/* mockdata: deterministic entities for pgenrich-mockapi, derived from the ID bytes alone, and
 * their renderings: JSON (API.md sections 1-3), the COPY text line of --expect, plus the strict
 * percent-decoder for IDs and the batch body parser. Pure: no I/O, no global state. */
#include "mockdata.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- hashing */

uint64_t mockdata_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

uint64_t mockdata_hash(const char *id, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)id[i];
        h *= 0x100000001b3ULL;
    }
    return mockdata_mix64(h);
}

/* splitmix64 sequence seeded by the ID hash: every field draws from it in a fixed order. */
typedef struct Rng {
    uint64_t s;
} Rng;

static uint64_t rng_next(Rng *r)
{
    r->s += 0x9e3779b97f4a7c15ULL;
    return mockdata_mix64(r->s);
}

static unsigned rng_below(Rng *r, unsigned n)
{
    return (unsigned)(rng_next(r) % n);
}

static double rng_unit(Rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* ---------------------------------------------------------------- UTF-8 */

/* Length (1-4) of the valid UTF-8 sequence at s (n bytes available), its code point in *cp;
 * 0 if the bytes there are not valid UTF-8. */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
    uint32_t c = s[0];
    size_t need;
    uint32_t min;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
        c &= 0x1F;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        c &= 0x0F;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        c &= 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return need;
}

bool mockdata_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    uint32_t cp;

    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = utf8_seq(p + i, len - i, &cp);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

/* ---------------------------------------------------------------- the entity */

typedef struct Town {
    const char *city, *region, *country;
    double lat, lon;
} Town;

static const Town towns[16] = {
    {"Paris", "Ile-de-France", "France", 48.8566, 2.3522},
    {"Berlin", "Berlin", "Germany", 52.52, 13.405},
    {"Lisbon", "Lisboa", "Portugal", 38.7223, -9.1393},
    {"Oslo", "Oslo", "Norway", 59.9139, 10.7522},
    {"Nairobi", "Nairobi County", "Kenya", -1.2921, 36.8219},
    {"Lima", "Lima", "Peru", -12.0464, -77.0428},
    {"Osaka", "Osaka", "Japan", 34.6937, 135.5023},
    {"Toronto", "Ontario", "Canada", 43.6532, -79.3832},
    {"Perth", "Western Australia", "Australia", -31.9505, 115.8605},
    {"Quito", "Pichincha", "Ecuador", -0.1807, -78.4678},
    {"Dakar", "Dakar", "Senegal", 14.7167, -17.4677},
    {"Hanoi", "Hanoi", "Vietnam", 21.0278, 105.8342},
    {"Austin", "Texas", "United States", 30.2672, -97.7431},
    {"Porto", "Porto", "Portugal", 41.1579, -8.6291},
    {"Turin", "Piedmont", "Italy", 45.0703, 7.6869},
    {"Cork", "Munster", "Ireland", 51.8985, -8.4756},
};

static const char *const places[16] = {
    "North Harbour", "Old Mill",    "Riverside",    "Market Square", "Castle Hill",  "Green Park",
    "Kings Cross",   "Lakeview",    "Sunset Ridge", "Elm Grove",     "Stone Bridge", "Cedar Point",
    "Fox Hollow",    "Maple Court", "Bay View",     "Iron Works",
};

static const char *const kinds[8] = {"Library", "Museum", "Theatre", "Bakery",
                                     "School",  "Chapel", "Gallery", "Market"};

static const char *const streets[8] = {"Harbour Street", "Main Street", "Station Road",
                                       "Church Lane",    "Park Avenue", "Mill Road",
                                       "High Street",    "Queen Street"};

/* Non-Latin scripts: label, city, region, country. */
static const char *const scripts[8][4] = {
    {"Красная площадь", "Москва", "Москва", "Россия"},
    {"Ακρόπολη", "Αθήνα", "Αττική", "Ελλάδα"},
    {"東京タワー", "東京", "東京都", "日本"},
    {"برج خليفة", "دبي", "دبي", "الإمارات"},
    {"ताज महल", "आगरा", "उत्तर प्रदेश", "भारत"},
    {"경복궁", "서울", "서울특별시", "대한민국"},
    {"הכותל המערבי", "ירושלים", "מחוז ירושלים", "ישראל"},
    /* decomposed accents: e + U+0301 COMBINING ACUTE ACCENT */
    {"Cafe\xcc\x81 Ame\xcc\x81lie",
     "Montre\xcc\x81"
     "al",
     "Que\xcc\x81"
     "bec",
     "Canada"},
};

static const char *const emoji_labels[4] = {
    "Pizza \xf0\x9f\x8d\x95 Place",
    "\xf0\x9f\x98\x80",
    "Pride \xf0\x9f\x8f\xb3\xef\xb8\x8f\xe2\x80\x8d\xf0\x9f\x8c\x88 Hall",
    "Math \xf0\x9d\x94\xb8 Club",
};

static const char lorem[] = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ";

static void set_bytes(MockEntity *e, MockField f, const char *s, size_t n)
{
    e->text[f] = s;
    e->len[f] = n;
}

static void set_text(MockEntity *e, MockField f, const char *s)
{
    set_bytes(e, f, s, s ? strlen(s) : 0);
}

/* Format into the entity's own store; the value stays valid as long as e does. */
static const char *store_fmt(MockEntity *e, size_t *len, const char *fmt, ...) PRINTF_LIKE(3, 4);

static const char *store_fmt(MockEntity *e, size_t *len, const char *fmt, ...)
{
    char *dst = e->store + e->store_used;
    size_t room = sizeof(e->store) - e->store_used;
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(dst, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room) { /* cannot happen with our formats; stay defined */
        *len = 0;
        return "";
    }
    e->store_used += (size_t)n + 1;
    *len = (size_t)n;
    return dst;
}

static void fill_ordinary(MockEntity *e, Rng *r)
{
    /* Draw into locals first: argument evaluation order is unspecified in C. */
    const Town *t = &towns[rng_below(r, 16)];
    unsigned place = rng_below(r, 16);
    unsigned kind = rng_below(r, 8);
    unsigned num = rng_below(r, 10000);
    unsigned house = 1 + rng_below(r, 300);
    unsigned street = rng_below(r, 8);
    unsigned postal = rng_below(r, 100000);
    double dlat = rng_unit(r) - 0.5;
    double dlon = rng_unit(r) - 0.5;
    const char *s;
    size_t n;

    s = store_fmt(e, &n, "%s %s %u", places[place], kinds[kind], num);
    set_bytes(e, MOCK_LABEL, s, n);
    set_text(e, MOCK_GEO_LABEL, t->region);
    s = store_fmt(e, &n, "%u %s", house, streets[street]);
    set_bytes(e, MOCK_STREET, s, n);
    set_text(e, MOCK_CITY, t->city);
    s = store_fmt(e, &n, "%05u", postal);
    set_bytes(e, MOCK_POSTAL, s, n);
    set_text(e, MOCK_COUNTRY, t->country);
    e->lat = t->lat + dlat * 0.2;
    e->lon = t->lon + dlon * 0.2;
    e->has_lat = e->has_lon = true;
}

static void fill_long_label(MockEntity *e, unsigned num)
{
    char *dst = e->store + e->store_used;
    size_t room = sizeof(e->store) - e->store_used;
    size_t n = 0;
    const size_t want = 600;

    if (room < want + 32) {
        set_text(e, MOCK_LABEL, lorem);
        return;
    }
    while (n + sizeof(lorem) - 1 <= want) {
        memcpy(dst + n, lorem, sizeof(lorem) - 1);
        n += sizeof(lorem) - 1;
    }
    n += (size_t)snprintf(dst + n, room - n, "#%u", num);
    e->store_used += n + 1;
    set_bytes(e, MOCK_LABEL, dst, n);
}

static void apply_variant(MockEntity *e, Rng *r, MockVariant v)
{
    unsigned sub = rng_below(r, 4);
    unsigned sub2 = rng_below(r, 4);

    switch (v) {
    case MOCK_V_ORDINARY:
    case MOCK_V_COUNT:
        break;
    case MOCK_V_TAB:
        set_text(e, MOCK_LABEL, (sub & 1) ? "\tLeading and trailing\t" : "Tab\tSeparated\tName");
        set_text(e, MOCK_STREET, "12\tHigh Street");
        break;
    case MOCK_V_NEWLINE:
        set_text(e, MOCK_LABEL, (sub & 1) ? "Trailing newline\n" : "First line\nSecond line");
        set_text(e, MOCK_STREET, "Building 7\nHarbour Street");
        break;
    case MOCK_V_CR:
        set_text(e, MOCK_LABEL, (sub & 1) ? "Windows\r\nLine end" : "Carriage\rReturn");
        set_text(e, MOCK_POSTAL, "CR\r");
        break;
    case MOCK_V_BACKSLASH:
        set_text(e, MOCK_LABEL, (sub & 1) ? "Ends with backslash\\" : "Back\\slash Hall");
        set_text(e, MOCK_STREET, "C:\\Temp\\Road");
        set_text(e, MOCK_CITY, "\\\\server\\share");
        break;
    case MOCK_V_QUOTE:
        set_text(e, MOCK_LABEL, (sub & 1) ? "\"" : "The \"Quoted\" Inn");
        set_text(e, MOCK_CITY, "\"Quote\"town");
        break;
    case MOCK_V_APOSTROPHE: {
        static const char *const labels[4] = {"O'Brien's Pub", "L'H\xc3\xb4tel d'Orsay",
                                              "'; DROP TABLE standardized_locations; --", "'"};
        set_text(e, MOCK_LABEL, labels[sub]);
        set_text(e, MOCK_STREET, "Place de l'H\xc3\xb4tel de Ville");
        break;
    }
    case MOCK_V_EMOJI:
        set_text(e, MOCK_LABEL, emoji_labels[sub]);
        set_text(e, MOCK_CITY, "\xf0\x9f\x8c\x8d Town");
        break;
    case MOCK_V_SCRIPT: {
        const char *const *sc = scripts[(sub << 1 | (sub2 & 1)) & 7];
        set_text(e, MOCK_LABEL, sc[0]);
        set_text(e, MOCK_CITY, sc[1]);
        set_text(e, MOCK_GEO_LABEL, sc[2]);
        set_text(e, MOCK_COUNTRY, sc[3]);
        break;
    }
    case MOCK_V_BACKSLASH_N:
        if (sub == 0) {
            set_text(e, MOCK_LABEL, "\\N");
        } else if (sub == 1) {
            set_text(e, MOCK_LABEL, "\\N");
            set_text(e, MOCK_POSTAL, "\\N");
        } else if (sub == 2) {
            set_text(e, MOCK_LABEL, "NULL");
            set_text(e, MOCK_STREET, "\\N");
        } else {
            set_text(e, MOCK_LABEL, "\\\\N");
            set_text(e, MOCK_CITY, "N");
        }
        break;
    case MOCK_V_EMPTY:
        set_text(e, MOCK_LABEL, "");
        if (sub == 1) {
            set_text(e, MOCK_POSTAL, "");
            set_text(e, MOCK_GEO_LABEL, "");
        } else if (sub == 2) {
            for (int f = 0; f < MOCK_FIELD_COUNT; f++)
                set_text(e, (MockField)f, "");
        }
        break;
    case MOCK_V_NULLS:
        if (sub == 0) {
            set_text(e, MOCK_LABEL, NULL);
        } else if (sub == 1) {
            set_text(e, MOCK_GEO_LABEL, NULL);
            set_text(e, MOCK_POSTAL, NULL);
        } else if (sub == 2) {
            for (int f = 0; f < MOCK_FIELD_COUNT; f++)
                set_text(e, (MockField)f, NULL);
        } else {
            set_text(e, MOCK_STREET, NULL);
            set_text(e, MOCK_CITY, NULL);
        }
        break;
    case MOCK_V_CONTROL:
        set_text(e, MOCK_LABEL, "Ctl\b\f\v\x01\x1f\x7f end");
        set_text(e, MOCK_STREET, "Bell\a and ESC\x1b[0m");
        break;
    case MOCK_V_BOUNDARY: {
        static const double lats[3] = {90.0, -90.0, 0.0};
        static const double lons[3] = {180.0, -180.0, 0.0};
        if (sub < 3)
            e->lat = lats[sub];
        if (sub2 < 3)
            e->lon = lons[sub2];
        if (sub == 3 && sub2 == 3)
            e->lat = 90.0;
        break;
    }
    case MOCK_V_TINY:
        e->lat = (sub & 1) ? 1e-7 : -2.5e-10;
        e->lon = (sub2 & 1) ? -3.0000000000000001e-9 : 1e-300;
        break;
    case MOCK_V_NO_COORDS:
        e->has_lat = e->has_lon = false;
        break;
    case MOCK_V_LONG:
        fill_long_label(e, sub * 4 + sub2);
        break;
    }
}

/* IDs whose decimal text JSON can carry exactly as a number. */
static bool id_is_number(const char *id, size_t len)
{
    if (len == 0 || len > 15 || (len > 1 && id[0] == '0'))
        return false;
    for (size_t i = 0; i < len; i++) {
        if (id[i] < '0' || id[i] > '9')
            return false;
    }
    return true;
}

/* Presentation flags, each drawn with probability 1/4 (always all drawn: stable order). */
static unsigned draw_flags(Rng *r, bool digits)
{
    static const unsigned all[] = {MOCK_P_ID_NUMBER,       MOCK_P_COORD_STRING, MOCK_P_NULL_MISSING,
                                   MOCK_P_EXTRA_KEYS,      MOCK_P_DUP_KEYS,     MOCK_P_REORDER,
                                   MOCK_P_UNICODE_ESCAPES, MOCK_P_PRETTY};
    unsigned p = 0;

    for (size_t i = 0; i < ARRAY_LEN(all); i++) {
        if (rng_below(r, 4) == 0)
            p |= all[i];
    }
    if (!digits)
        p &= ~(unsigned)MOCK_P_ID_NUMBER;
    return p;
}

static void make_bad(MockEntity *e, Rng *r)
{
    unsigned sub = rng_below(r, 2);

    e->bad = (MockBadKind)(1 + rng_below(r, MOCK_BAD_KIND_COUNT - 1));
    switch (e->bad) {
    case MOCK_BAD_NUL_LABEL: {
        static const char nul_label[] = "Bad\0Label";
        set_bytes(e, MOCK_LABEL, nul_label, sizeof(nul_label) - 1);
        break;
    }
    case MOCK_BAD_LAT_RANGE:
        e->lat = sub ? 90.000000000000014 : -91.5;
        break;
    case MOCK_BAD_LON_RANGE:
        e->lon = sub ? -180.00000000000003 : 200.25;
        break;
    case MOCK_BAD_UTF8:
        set_text(e, MOCK_LABEL, sub ? "Bad \xff\xfe bytes" : "Overlong \xc0\xaf slash");
        break;
    case MOCK_BAD_LABEL_TYPE:
    case MOCK_BAD_LOCATION_TYPE:
    case MOCK_BAD_NONE:
    case MOCK_BAD_KIND_COUNT:
        break;
    }
}

void mockdata_entity(const char *id, size_t len, MockEntity *e)
{
    uint64_t h = mockdata_hash(id, len);
    Rng r = {h};
    unsigned bucket = (unsigned)(h % 1000);
    bool digits = id_is_number(id, len);

    e->outcome = MOCK_FOUND;
    e->variant = MOCK_V_ORDINARY;
    e->bad = MOCK_BAD_NONE;
    e->present = 0;
    e->store_used = 0;
    fill_ordinary(e, &r);

    if (bucket < 20) {
        e->outcome = MOCK_NOT_FOUND;
        for (int f = 0; f < MOCK_FIELD_COUNT; f++)
            set_text(e, (MockField)f, NULL);
        e->has_lat = e->has_lon = false;
    } else if (bucket < 50) {
        e->outcome = MOCK_NO_LOCATION;
        for (int f = MOCK_GEO_LABEL; f < MOCK_FIELD_COUNT; f++)
            set_text(e, (MockField)f, NULL);
        e->has_lat = e->has_lon = false;
        /* Alternate between "location": null and no location key at all. */
        e->present = draw_flags(&r, digits) & ~(unsigned)MOCK_P_NULL_MISSING;
        if (h & (1ULL << 40))
            e->present |= MOCK_P_NULL_MISSING;
    } else if (bucket < 60) {
        e->outcome = MOCK_BAD;
        e->present = draw_flags(&r, digits);
        make_bad(e, &r);
    } else if (bucket < 200) {
        e->variant = (MockVariant)(1 + rng_below(&r, MOCK_V_COUNT - 1));
        e->present = draw_flags(&r, digits);
        if (e->variant == MOCK_V_NULLS) {
            e->present &= ~(unsigned)MOCK_P_NULL_MISSING;
            if (rng_below(&r, 2))
                e->present |= MOCK_P_NULL_MISSING;
        }
        apply_variant(e, &r, e->variant);
    }
}

const char *mockdata_outcome_name(MockOutcome o)
{
    static const char *const names[] = {"found", "no_location", "not_found", "bad_response"};

    return (unsigned)o < ARRAY_LEN(names) ? names[o] : "bad_response";
}

/* Escape tables: pairs of (letter after the backslash, byte it stands for). */
static const char JSON_ESCAPES[] = "\"\"\\\\//b\bf\fn\nr\rt\t";
static const char COPY_ESCAPES[] = "\\\\b\bf\fn\nr\rt\tv\v";

/* The byte that escape letter c stands for (reverse = false), or the letter that escapes
 * byte c (reverse = true); -1 if the table has none. */
static int unescape_pair(const char *pairs, char c, bool reverse)
{
    for (size_t i = 0; pairs[i]; i += 2) {
        if (pairs[i + reverse] == c)
            return (unsigned char)pairs[i + !reverse];
    }
    return -1;
}

/* ---------------------------------------------------------------- output buffer */

#define W_MAX_DEPTH 8

/* An snprintf-like sink: counts everything, stores what fits. */
typedef struct W {
    char *out;
    size_t cap;
    size_t len;
    unsigned flags;
    int depth;
    bool first[W_MAX_DEPTH];
} W;

static void w_init(W *w, char *out, size_t cap, unsigned flags)
{
    w->out = out;
    w->cap = cap;
    w->len = 0;
    w->flags = flags;
    w->depth = 0;
    w->first[0] = true;
}

static size_t w_finish(W *w)
{
    if (w->cap > 0)
        w->out[w->len < w->cap ? w->len : w->cap - 1] = '\0';
    return w->len;
}

static void w_raw(W *w, const char *s, size_t n)
{
    if (w->len < w->cap) {
        size_t room = w->cap - w->len;
        memcpy(w->out + w->len, s, n < room ? n : room);
    }
    w->len += n;
}

static void w_lit(W *w, const char *s)
{
    w_raw(w, s, strlen(s));
}

static void w_ch(W *w, char c)
{
    if (w->len < w->cap)
        w->out[w->len] = c;
    w->len++;
}

static void w_indent(W *w)
{
    w_ch(w, '\n');
    for (int i = 0; i < w->depth; i++)
        w_raw(w, "  ", 2);
}

static void w_sep(W *w)
{
    if (!w->first[w->depth])
        w_ch(w, ',');
    w->first[w->depth] = false;
    if (w->flags & MOCK_P_PRETTY)
        w_indent(w);
}

static void w_open(W *w, char c)
{
    w_ch(w, c);
    if (w->depth + 1 < W_MAX_DEPTH)
        w->depth++;
    w->first[w->depth] = true;
}

static void w_close(W *w, char c)
{
    bool empty = w->first[w->depth];

    if (w->depth > 0)
        w->depth--;
    if ((w->flags & MOCK_P_PRETTY) && !empty)
        w_indent(w);
    w_ch(w, c);
}

static const char hexdig[] = "0123456789abcdef";

static void w_u16(W *w, unsigned v)
{
    char b[6] = {
        '\\',          'u', hexdig[(v >> 12) & 15], hexdig[(v >> 8) & 15], hexdig[(v >> 4) & 15],
        hexdig[v & 15]};
    w_raw(w, b, sizeof(b));
}

/* A JSON string. Bytes >= 0x80 pass unchanged (invalid UTF-8 included, for the BAD cases)
 * unless MOCK_P_UNICODE_ESCAPES asks for \uXXXX. */
static void w_str(W *w, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    bool uni = (w->flags & MOCK_P_UNICODE_ESCAPES) != 0;
    size_t run = 0;

    w_ch(w, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        int e = c < 0x80 ? unescape_pair(JSON_ESCAPES, (char)c, true) : -1;
        if (e == '/' && !uni)
            e = -1;
        if (e < 0 && c >= 0x20 && (c < 0x80 || !uni))
            continue;
        w_raw(w, s + run, i - run);
        run = i + 1;
        if (e >= 0) {
            char esc[2] = {'\\', (char)e};
            w_raw(w, esc, 2);
        } else if (c < 0x20) {
            w_u16(w, c);
        } else {
            uint32_t cp;
            size_t len = utf8_seq(p + i, n - i, &cp);
            if (len == 0) {
                w_ch(w, (char)c); /* not UTF-8: passed on raw (the BAD cases want that) */
                continue;
            }
            if (cp < 0x10000) {
                w_u16(w, cp);
            } else {
                cp -= 0x10000;
                w_u16(w, 0xD800 | (cp >> 10));
                w_u16(w, 0xDC00 | (cp & 0x3FF));
            }
            i += len - 1;
            run = i + 1;
        }
    }
    w_raw(w, s + run, n - run);
    w_ch(w, '"');
}

static void w_key(W *w, const char *k)
{
    w_sep(w);
    w_str(w, k, strlen(k));
    w_ch(w, ':');
    if (w->flags & MOCK_P_PRETTY)
        w_ch(w, ' ');
}

static void w_double(W *w, double v)
{
    char b[40];
    int n = snprintf(b, sizeof(b), "%.17g", v);
    w_raw(w, b, (size_t)n);
}

static void w_coord(W *w, double v)
{
    if (w->flags & MOCK_P_COORD_STRING) {
        w_ch(w, '"');
        w_double(w, v);
        w_ch(w, '"');
    } else {
        w_double(w, v);
    }
}

/* ---------------------------------------------------------------- JSON shapes */

static void put_id(W *w, const char *id, size_t idlen)
{
    w_key(w, "id");
    if ((w->flags & MOCK_P_ID_NUMBER) && id_is_number(id, idlen))
        w_raw(w, id, idlen);
    else
        w_str(w, id, idlen);
}

/* A text member: NULL as null or left out; with DUP_KEYS a decoy goes first. */
static void put_text(W *w, const char *key, const char *v, size_t n)
{
    if (!v) {
        if (!(w->flags & MOCK_P_NULL_MISSING)) {
            w_key(w, key);
            w_lit(w, "null");
        }
        return;
    }
    if (w->flags & MOCK_P_DUP_KEYS) {
        w_key(w, key);
        w_lit(w, "\"DECOY\"");
    }
    w_key(w, key);
    w_str(w, v, n);
}

static void put_coord(W *w, const char *key, bool has, double v)
{
    if (!has) {
        if (!(w->flags & MOCK_P_NULL_MISSING)) {
            w_key(w, key);
            w_lit(w, "null");
        }
        return;
    }
    if (w->flags & MOCK_P_DUP_KEYS) {
        w_key(w, key);
        w_lit(w, "-1.5");
    }
    w_key(w, key);
    w_coord(w, v);
}

static void put_label(W *w, const MockEntity *e, const char *key)
{
    if (e->bad == MOCK_BAD_LABEL_TYPE) {
        if (w->flags & MOCK_P_DUP_KEYS) {
            w_key(w, key);
            w_lit(w, "\"DECOY\"");
        }
        w_key(w, key);
        w_lit(w, "12345");
        return;
    }
    put_text(w, key, e->text[MOCK_LABEL], e->len[MOCK_LABEL]);
}

static void put_extra_top(W *w)
{
    w_key(w, "rank");
    w_lit(w, "7");
    w_key(w, "Label"); /* keys are case-sensitive: this is not "label" */
    w_lit(w, "\"wrong case\"");
    w_key(w, "tags");
    w_open(w, '[');
    w_sep(w);
    w_lit(w, "\"museum\"");
    w_sep(w);
    w_lit(w, "\"la\\\"nd\\u006Dark\"");
    w_close(w, ']');
    w_key(w, "meta");
    w_open(w, '{');
    w_key(w, "source");
    w_lit(w, "\"mock\"");
    w_key(w, "nested");
    w_open(w, '{');
    w_key(w, "list");
    w_lit(w, "[1, 2.5, -3e-2, true, false, null, \"s\", {\"location\": null}]");
    w_key(w, "empty");
    w_lit(w, "{}");
    w_key(w, "emptyList");
    w_lit(w, "[]");
    w_close(w, '}');
    w_close(w, '}');
}

static void put_location_body(W *w, const MockEntity *e)
{
    static const struct {
        const char *key;
        MockField f;
    } keys[5] = {{"geoLabel", MOCK_GEO_LABEL},
                 {"streetAddress", MOCK_STREET},
                 {"cityLabel", MOCK_CITY},
                 {"postalCode", MOCK_POSTAL},
                 {"countryLabel", MOCK_COUNTRY}};
    bool reorder = (w->flags & MOCK_P_REORDER) != 0;

    w_open(w, '{');
    if (reorder) {
        put_coord(w, "longitude", e->has_lon, e->lon);
        put_coord(w, "latitude", e->has_lat, e->lat);
        for (int i = 4; i >= 0; i--)
            put_text(w, keys[i].key, e->text[keys[i].f], e->len[keys[i].f]);
    } else {
        for (int i = 0; i < 5; i++)
            put_text(w, keys[i].key, e->text[keys[i].f], e->len[keys[i].f]);
        put_coord(w, "latitude", e->has_lat, e->lat);
        put_coord(w, "longitude", e->has_lon, e->lon);
    }
    if (w->flags & MOCK_P_EXTRA_KEYS) {
        w_key(w, "accuracy");
        w_lit(w, "12.5");
        w_key(w, "confidence");
        w_lit(w, "null");
        w_key(w, "bbox");
        w_lit(w, "[-1, -2, 3.25, 4]");
    }
    w_close(w, '}');
}

static void put_location(W *w, const MockEntity *e)
{
    bool dup = (w->flags & MOCK_P_DUP_KEYS) != 0;

    if (e->outcome == MOCK_NO_LOCATION) {
        if (w->flags & MOCK_P_NULL_MISSING)
            return;
        if (dup) { /* a decoy location that must lose to the null after it */
            w_key(w, "location");
            w_lit(w, "{\"latitude\": 1, \"longitude\": 2, \"cityLabel\": \"DECOY\"}");
        }
        w_key(w, "location");
        w_lit(w, "null");
        return;
    }
    if (dup) {
        w_key(w, "location");
        w_lit(w, "null");
    }
    w_key(w, "location");
    if (e->bad == MOCK_BAD_LOCATION_TYPE) {
        w_ch(w, '[');
        w_coord(w, e->lat);
        w_ch(w, ',');
        w_coord(w, e->lon);
        w_ch(w, ']');
        return;
    }
    put_location_body(w, e);
}

size_t mockdata_json_primary(const MockEntity *e, const char *id, size_t idlen, char *out,
                             size_t cap)
{
    W w;

    w_init(&w, out, cap, e->present);
    w_open(&w, '{');
    if (e->outcome == MOCK_NOT_FOUND) {
        put_id(&w, id, idlen);
        w_key(&w, "error");
        w_lit(&w, "{\"status\":404,\"message\":\"no such entity\"}");
    } else if (e->present & MOCK_P_REORDER) {
        if (e->present & MOCK_P_EXTRA_KEYS)
            put_extra_top(&w);
        put_location(&w, e);
        put_label(&w, e, "label");
        put_id(&w, id, idlen);
    } else {
        put_id(&w, id, idlen);
        put_label(&w, e, "label");
        put_location(&w, e);
        if (e->present & MOCK_P_EXTRA_KEYS)
            put_extra_top(&w);
    }
    w_close(&w, '}');
    return w_finish(&w);
}

static void put_address(W *w, const MockEntity *e)
{
    static const struct {
        const char *key;
        MockField f;
    } keys[5] = {{"road", MOCK_STREET},
                 {"city", MOCK_CITY},
                 {"postcode", MOCK_POSTAL},
                 {"state", MOCK_GEO_LABEL},
                 {"country", MOCK_COUNTRY}};

    w_key(w, "address");
    if (e->bad == MOCK_BAD_LOCATION_TYPE) {
        w_lit(w, "[\"road\", \"city\"]");
        return;
    }
    w_open(w, '{');
    for (int i = 0; i < 5; i++) {
        int k = (w->flags & MOCK_P_REORDER) ? 4 - i : i;
        put_text(w, keys[k].key, e->text[keys[k].f], e->len[keys[k].f]);
    }
    if (w->flags & MOCK_P_EXTRA_KEYS) {
        w_key(w, "country_code");
        w_lit(w, "\"xx\"");
        w_key(w, "suburb");
        w_lit(w, "null");
    }
    w_close(w, '}');
}

size_t mockdata_json_secondary(const MockEntity *e, const char *id, size_t idlen, char *out,
                               size_t cap)
{
    W w;
    bool reorder = (e->present & MOCK_P_REORDER) != 0;

    (void)id;
    (void)idlen;
    w_init(&w, out, cap, e->present);
    w_open(&w, '{');
    if (e->present & MOCK_P_EXTRA_KEYS) {
        w_key(&w, "attribution");
        w_lit(&w, "\"mock data\"");
    }
    w_key(&w, "results");
    w_open(&w, '[');
    if (e->outcome == MOCK_FOUND || e->outcome == MOCK_BAD) {
        w_sep(&w);
        w_open(&w, '{');
        if (reorder) {
            put_address(&w, e);
            put_coord(&w, "lon", e->has_lon, e->lon);
            put_coord(&w, "lat", e->has_lat, e->lat);
            put_label(&w, e, "name");
        } else {
            put_label(&w, e, "name");
            put_coord(&w, "lat", e->has_lat, e->lat);
            put_coord(&w, "lon", e->has_lon, e->lon);
            put_address(&w, e);
        }
        if (e->present & MOCK_P_EXTRA_KEYS) {
            w_key(&w, "importance");
            w_lit(&w, "0.42");
            w_key(&w, "boundingbox");
            w_lit(&w, "[\"48.1\", \"48.2\", \"2.1\", \"2.2\"]");
        }
        w_close(&w, '}');
    }
    w_close(&w, ']');
    w_close(&w, '}');
    return w_finish(&w);
}

size_t mockdata_json_string(const char *s, size_t len, char *out, size_t cap)
{
    W w;

    w_init(&w, out, cap, 0);
    w_str(&w, s, len);
    return w_finish(&w);
}

size_t mockdata_json_id_error(const char *id, size_t idlen, unsigned status, const char *message,
                              char *out, size_t cap)
{
    W w;
    char b[16];
    int n = snprintf(b, sizeof(b), "%u", status);

    w_init(&w, out, cap, 0);
    w_open(&w, '{');
    put_id(&w, id, idlen);
    w_key(&w, "error");
    w_open(&w, '{');
    w_key(&w, "status");
    w_raw(&w, b, (size_t)n);
    w_key(&w, "message");
    w_ch(&w, '"');
    w_lit(&w, message);
    w_ch(&w, '"');
    w_close(&w, '}');
    w_close(&w, '}');
    return w_finish(&w);
}

/* ---------------------------------------------------------------- per-ID quirks */

static const char *const quirk_names[MOCK_Q_COUNT] = {"down", "miss",      "ctype", "pad",
                                                      "nest", "forbidden", "slow"};

const char *mockdata_quirk_name(MockQuirk q)
{
    return (unsigned)q < MOCK_Q_COUNT ? quirk_names[q] : "?";
}

bool mockdata_quirk_picked(MockQuirk q, unsigned mod, const char *id, size_t len)
{
    /* The salt differs per quirk so that the picks are independent of each other and of the
     * entity drawn from the same hash. */
    uint64_t salt = 0x9e3779b97f4a7c15ULL * (uint64_t)(q + 1);

    if (mod == 0)
        return false;
    return mockdata_mix64(mockdata_hash(id, len) ^ salt) % mod == 0;
}

size_t mockdata_quirk_tags(const unsigned mods[MOCK_Q_COUNT], const char *id, size_t len, char *out,
                           size_t cap)
{
    W w;
    bool first = true;

    w_init(&w, out, cap, 0);
    for (int q = 0; q < MOCK_Q_COUNT; q++) {
        if (!mockdata_quirk_picked((MockQuirk)q, mods[q], id, len))
            continue;
        if (!first)
            w_ch(&w, ',');
        w_lit(&w, quirk_names[q]);
        first = false;
    }
    return w_finish(&w);
}

/* ---------------------------------------------------------------- COPY text */

static void w_copy(W *w, const char *s, size_t n)
{
    size_t run = 0;

    for (size_t i = 0; i < n; i++) {
        int e = unescape_pair(COPY_ESCAPES, s[i], true);
        if (e < 0)
            continue;
        char esc[2] = {'\\', (char)e};
        w_raw(w, s + run, i - run);
        w_raw(w, esc, 2);
        run = i + 1;
    }
    w_raw(w, s + run, n - run);
}

size_t mockdata_copy_escape(const char *s, size_t len, char *out, size_t cap)
{
    W w;

    w_init(&w, out, cap, 0);
    w_copy(&w, s, len);
    return w_finish(&w);
}

size_t mockdata_expect_line(const MockEntity *e, const char *id, size_t idlen, char *out,
                            size_t cap)
{
    W w;
    bool found = e->outcome == MOCK_FOUND;

    w_init(&w, out, cap, 0);
    w_copy(&w, id, idlen);
    w_ch(&w, '\t');
    w_lit(&w, mockdata_outcome_name(e->outcome));
    for (int f = 0; f < MOCK_FIELD_COUNT; f++) {
        w_ch(&w, '\t');
        if (found && e->text[f])
            w_copy(&w, e->text[f], e->len[f]);
        else
            w_raw(&w, "\\N", 2);
    }
    w_ch(&w, '\t');
    if (found && e->has_lat)
        w_double(&w, e->lat);
    else
        w_raw(&w, "\\N", 2);
    w_ch(&w, '\t');
    if (found && e->has_lon)
        w_double(&w, e->lon);
    else
        w_raw(&w, "\\N", 2);
    w_ch(&w, '\n');
    return w_finish(&w);
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool mockdata_copy_decode(const char *in, size_t len, char *out, size_t *outlen)
{
    size_t o = 0;

    if (len == 2 && in[0] == '\\' && in[1] == 'N')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        int v;
        if (c != '\\' || i + 1 == len) {
            out[o++] = (char)c;
            continue;
        }
        c = (unsigned char)in[++i];
        if ((v = unescape_pair(COPY_ESCAPES, (char)c, false)) >= 0) {
            out[o++] = (char)v;
        } else if (c >= '0' && c <= '7') { /* octal, up to three digits */
            v = c - '0';
            for (int k = 0; k < 2 && i + 1 < len && in[i + 1] >= '0' && in[i + 1] <= '7'; k++)
                v = v * 8 + (in[++i] - '0');
            out[o++] = (char)(v & 0xFF);
        } else if (c == 'x' && i + 1 < len && hexval((unsigned char)in[i + 1]) >= 0) {
            v = hexval((unsigned char)in[++i]); /* hex, one or two digits */
            if (i + 1 < len && hexval((unsigned char)in[i + 1]) >= 0)
                v = v * 16 + hexval((unsigned char)in[++i]);
            out[o++] = (char)v;
        } else {
            out[o++] = (char)c; /* any other escaped character stands for itself */
        }
    }
    *outlen = o;
    return true;
}

/* ---------------------------------------------------------------- ID decoding */

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

bool mockdata_id_decode(const char *raw, size_t rawlen, char *out, size_t cap, size_t *outlen)
{
    size_t o = 0;
    bool all_dots = true, raw_dot = false, enc_dot = false;

    for (size_t i = 0; i < rawlen; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (o >= cap)
            return false;
        if (unreserved(c)) {
            if (c == '.')
                raw_dot = true;
            else
                all_dots = false;
            out[o++] = (char)c;
            continue;
        }
        if (c != '%' || i + 2 >= rawlen || hexval((unsigned char)raw[i + 1]) < 0 ||
            hexval((unsigned char)raw[i + 2]) < 0)
            return false;
        c = (unsigned char)(hexval((unsigned char)raw[i + 1]) * 16 +
                            hexval((unsigned char)raw[i + 2]));
        i += 2;
        if (c == '.')
            enc_dot = true;
        else if (unreserved(c))
            return false; /* over-encoded: only dots of an all-dots ID may be encoded */
        else
            all_dots = false;
        out[o++] = (char)c;
    }
    if (o > 0 && all_dots) {
        if (raw_dot)
            return false; /* "." and ".." must be sent as %2E and %2E%2E */
    } else if (enc_dot) {
        return false;
    }
    if (memchr(out, '\0', o) || !mockdata_utf8_valid(out, o))
        return false;
    *outlen = o;
    return true;
}

/* ---------------------------------------------------------------- batch body */

#define JP_MAX_DEPTH 64

typedef struct JP {
    const unsigned char *s;
    size_t n;
    size_t i;
    int depth;
} JP;

static void jp_ws(JP *p)
{
    while (p->i < p->n &&
           (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static bool jp_eat(JP *p, char c)
{
    jp_ws(p);
    if (p->i < p->n && p->s[p->i] == (unsigned char)c) {
        p->i++;
        return true;
    }
    return false;
}

static bool jp_hex4(JP *p, size_t at, uint32_t *v)
{
    *v = 0;
    if (at + 4 > p->n)
        return false;
    for (size_t k = 0; k < 4; k++) {
        int h = hexval(p->s[at + k]);
        if (h < 0)
            return false;
        *v = *v * 16 + (uint32_t)h;
    }
    return true;
}

static size_t utf8_put(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A string at p->i (after whitespace). With out, the decoded bytes go there (room for the
 * raw length is enough) and their count to *olen. */
static bool jp_string(JP *p, char *out, size_t *olen)
{
    size_t o = 0;
    char tmp[4];

    jp_ws(p);
    if (p->i >= p->n || p->s[p->i] != '"')
        return false;
    p->i++;
    while (p->i < p->n) {
        unsigned char c = p->s[p->i];
        if (c == '"') {
            p->i++;
            if (olen)
                *olen = o;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c != '\\') {
            if (out)
                out[o] = (char)c;
            o++;
            p->i++;
            continue;
        }
        if (p->i + 1 >= p->n)
            return false;
        c = p->s[p->i + 1];
        p->i += 2;
        if (c == 'u') {
            uint32_t cp, lo;
            if (!jp_hex4(p, p->i, &cp))
                return false;
            p->i += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return false;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (p->i + 6 > p->n || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u' ||
                    !jp_hex4(p, p->i + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    return false;
                p->i += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            /* The encoding (<= 4 bytes) is never longer than the escape (>= 6 bytes). */
            size_t k = utf8_put(cp, tmp);
            if (out)
                memcpy(out + o, tmp, k);
            o += k;
            continue;
        }
        int d = unescape_pair(JSON_ESCAPES, (char)c, false);
        if (d < 0)
            return false;
        if (out)
            out[o] = (char)d;
        o++;
    }
    return false;
}

static bool jp_number(JP *p)
{
    size_t i = p->i;
    const unsigned char *s = p->s;

    if (i < p->n && s[i] == '-')
        i++;
    if (i >= p->n)
        return false;
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (i < p->n && s[i] >= '0' && s[i] <= '9')
            i++;
    } else {
        return false;
    }
    if (i < p->n && s[i] == '.') {
        i++;
        if (i >= p->n || s[i] < '0' || s[i] > '9')
            return false;
        while (i < p->n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (i < p->n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < p->n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= p->n || s[i] < '0' || s[i] > '9')
            return false;
        while (i < p->n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    p->i = i;
    return true;
}

static bool jp_word(JP *p, const char *w)
{
    size_t n = strlen(w);

    if (p->n - p->i < n || memcmp(p->s + p->i, w, n) != 0)
        return false;
    p->i += n;
    return true;
}

/* Validate and skip any JSON value. */
static bool jp_skip(JP *p)
{
    bool ok = false;

    jp_ws(p);
    if (p->i >= p->n || p->depth >= JP_MAX_DEPTH)
        return false;
    switch (p->s[p->i]) {
    case '"':
        return jp_string(p, NULL, NULL);
    case 't':
        return jp_word(p, "true");
    case 'f':
        return jp_word(p, "false");
    case 'n':
        return jp_word(p, "null");
    case '{':
        p->i++;
        p->depth++;
        if (jp_eat(p, '}')) {
            ok = true;
            break;
        }
        do {
            if (!jp_string(p, NULL, NULL) || !jp_eat(p, ':') || !jp_skip(p))
                goto done;
        } while (jp_eat(p, ','));
        ok = jp_eat(p, '}');
        break;
    case '[':
        p->i++;
        p->depth++;
        if (jp_eat(p, ']')) {
            ok = true;
            break;
        }
        do {
            if (!jp_skip(p))
                goto done;
        } while (jp_eat(p, ','));
        ok = jp_eat(p, ']');
        break;
    default:
        return jp_number(p);
    }
done:
    p->depth--;
    return ok;
}

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (errlen > 0)
        snprintf(err, errlen, "%s", msg);
}

void mockdata_idlist_free(MockIdList *l)
{
    free(l->data);
    free(l->start);
    free(l->len);
    l->data = NULL;
    l->start = NULL;
    l->len = NULL;
    l->count = 0;
}

/* The "ids" array: replaces whatever an earlier "ids" key left in l. */
static MockBatchStatus jp_ids(JP *p, MockIdList *l, size_t max_ids, size_t slots, char *err,
                              size_t errlen)
{
    size_t used = 0;

    l->count = 0;
    if (!jp_eat(p, '[')) {
        set_err(err, errlen, "\"ids\" must be an array of strings");
        return MOCK_BATCH_BAD;
    }
    if (jp_eat(p, ']'))
        return MOCK_BATCH_OK;
    do {
        size_t n;
        if (!jp_string(p, l->data + used, &n)) {
            set_err(err, errlen, "\"ids\" must be an array of strings");
            return MOCK_BATCH_BAD;
        }
        if (n > MOCK_ID_MAX || memchr(l->data + used, '\0', n) ||
            !mockdata_utf8_valid(l->data + used, n)) {
            set_err(err, errlen, "an id is too long, holds NUL or is not UTF-8");
            return MOCK_BATCH_BAD;
        }
        if (l->count >= max_ids || l->count >= slots) {
            set_err(err, errlen, "too many ids");
            return MOCK_BATCH_TOO_MANY;
        }
        l->start[l->count] = used;
        l->len[l->count] = n;
        l->count++;
        used += n;
    } while (jp_eat(p, ','));
    if (!jp_eat(p, ']')) {
        set_err(err, errlen, "\"ids\" must be an array of strings");
        return MOCK_BATCH_BAD;
    }
    return MOCK_BATCH_OK;
}

MockBatchStatus mockdata_parse_batch(const char *body, size_t len, size_t max_ids, MockIdList *out,
                                     char *err, size_t errlen)
{
    MockIdList l = {NULL, NULL, NULL, 0};
    JP p = {(const unsigned char *)body, len, 0, 0};
    MockBatchStatus st = MOCK_BATCH_BAD;
    size_t slots = len / 2 + 1; /* every string takes at least two bytes ("") */
    bool have_ids = false;

    if (slots > max_ids + 1)
        slots = max_ids + 1;
    l.data = malloc(len + 1);
    l.start = malloc(slots * sizeof(*l.start));
    l.len = malloc(slots * sizeof(*l.len));
    if (!l.data || !l.start || !l.len) {
        set_err(err, errlen, "out of memory");
        st = MOCK_BATCH_NOMEM;
        goto failed;
    }
    set_err(err, errlen, "body must be a JSON object {\"ids\": [...]}");
    if (!jp_eat(&p, '{'))
        goto failed;
    if (!jp_eat(&p, '}')) {
        do {
            char key[8];
            size_t klen = 0;
            size_t save;
            /* Decode short keys only; a long key cannot be "ids". */
            jp_ws(&p);
            save = p.i;
            if (!jp_string(&p, NULL, &klen))
                goto failed;
            if (klen <= sizeof(key)) {
                p.i = save;
                if (!jp_string(&p, key, &klen))
                    goto failed;
            }
            if (!jp_eat(&p, ':'))
                goto failed;
            if (klen == 3 && memcmp(key, "ids", 3) == 0) {
                st = jp_ids(&p, &l, max_ids, slots, err, errlen);
                if (st != MOCK_BATCH_OK)
                    goto failed;
                st = MOCK_BATCH_BAD;
                have_ids = true;
            } else if (!jp_skip(&p)) {
                goto failed;
            }
        } while (jp_eat(&p, ','));
        if (!jp_eat(&p, '}'))
            goto failed;
    }
    jp_ws(&p);
    if (p.i != p.n)
        goto failed;
    if (!have_ids) {
        set_err(err, errlen, "missing \"ids\"");
        goto failed;
    }
    set_err(err, errlen, "");
    *out = l;
    return MOCK_BATCH_OK;

failed:
    mockdata_idlist_free(&l);
    return st;
}
