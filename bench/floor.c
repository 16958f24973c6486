/* pgenrich-floor: the benchmark's floor, what the lookups alone cost a bare libcurl client:
 * N GETs of BASE/api/v2/entities/{i}?select=id,label,location for i = 1..N, C at a time, over
 * C reused easy handles and kept-alive connections, each answer parsed with json-c; no
 * database. The multi handle is driven by its socket interface on epoll, the cheapest way
 * libcurl offers for many transfers at once (pgenrich does the same on libev).
 * Prints one line: floor: requests N, ok K, failed F, seconds S, requests/s X. */
#include <curl/curl.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <time.h>

#define MAX_BODY (1 << 20)
#define URL_MAX  2048

typedef struct Slot {
    CURL *easy;
    char *body; /* the answer so far; grows up to MAX_BODY */
    size_t len, cap;
    bool too_big;
    char url[URL_MAX];
} Slot;

typedef struct Counts {
    long done, ok, failed;
} Counts;

typedef struct Loop {
    int ep;          /* the epoll instance watching curl's sockets */
    long timeout_ms; /* curl's timer: -1 none, else fire in this many ms */
} Loop;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Parse a positive count from text; false when it is not one. */
static bool parse_count(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v <= 0)
        return false;
    *out = v;
    return true;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    Slot *s = userp;
    size_t n = size * nmemb;
    if (s->len + n > MAX_BODY) {
        s->too_big = true;
        return 0; /* aborts the transfer: counted as failed */
    }
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 1024;
        while (cap < s->len + n + 1)
            cap *= 2;
        char *p = realloc(s->body, cap);
        if (!p)
            return 0;
        s->body = p;
        s->cap = cap;
    }
    memcpy(s->body + s->len, data, n);
    s->len += n;
    s->body[s->len] = '\0';
    return n;
}

/* An answer counts as good when it is a JSON object holding "id", as API.md section 1's. */
static bool answer_ok(json_tokener *tok, const Slot *s)
{
    json_tokener_reset(tok);
    json_object *doc = json_tokener_parse_ex(tok, s->body ? s->body : "", (int)s->len);
    bool good = doc != NULL && json_tokener_get_error(tok) == json_tokener_success &&
                json_object_is_type(doc, json_type_object) &&
                json_object_object_get_ex(doc, "id", NULL);
    json_object_put(doc);
    return good;
}

/* CURLMOPT_SOCKETFUNCTION: watch fd for what curl asks, or stop watching it. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *sockp)
{
    Loop *l = userp;
    (void)easy;
    (void)sockp;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(l->ep, EPOLL_CTL_DEL, fd, NULL); /* it may be closed already: no matter */
        return 0;
    }
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.data.fd = fd;
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
    if (epoll_ctl(l->ep, EPOLL_CTL_MOD, fd, &ev) == 0)
        return 0;
    if (errno == ENOENT && epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) == 0)
        return 0;
    return -1;
}

/* CURLMOPT_TIMERFUNCTION: remember when curl wants its timeout action. */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    Loop *l = userp;
    (void)multi;
    l->timeout_ms = timeout_ms;
    return 0;
}

/* Point the slot's handle at ID id and hand it to the multi handle. */
static bool slot_start(CURLM *multi, Slot *s, const char *base, long id)
{
    int n = snprintf(s->url, sizeof s->url, "%s/api/v2/entities/%ld?select=id,label,location", base,
                     id);
    if (n < 0 || (size_t)n >= sizeof s->url)
        return false;
    s->len = 0;
    s->too_big = false;
    return curl_easy_setopt(s->easy, CURLOPT_URL, s->url) == CURLE_OK &&
           curl_multi_add_handle(multi, s->easy) == CURLM_OK;
}

static bool slot_init(Slot *s, struct curl_slist *headers)
{
    memset(s, 0, sizeof *s);
    s->easy = curl_easy_init();
    if (!s->easy)
        return false;
    return curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK &&
           curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s) == CURLE_OK &&
           curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s) == CURLE_OK &&
           curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, headers) == CURLE_OK &&
           curl_easy_setopt(s->easy, CURLOPT_USERAGENT, "pgenrich-floor") == CURLE_OK &&
           curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
           curl_easy_setopt(s->easy, CURLOPT_TIMEOUT, 30L) == CURLE_OK;
}

/* Settle the finished transfers and start the next IDs on their handles. */
static bool drain(CURLM *multi, json_tokener *tok, const char *base, long n, long *next, Counts *c)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        /* msg does not survive curl_multi_remove_handle: copy what is needed first */
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result;
        char *priv = NULL;
        long status = 0;
        if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) != CURLE_OK || priv == NULL)
            return false;
        Slot *s = (Slot *)priv;
        if (curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
            status = 0;
        c->done++;
        if (result == CURLE_OK && status == 200 && answer_ok(tok, s))
            c->ok++;
        else
            c->failed++;
        curl_multi_remove_handle(multi, easy);
        if (*next <= n) {
            if (!slot_start(multi, s, base, *next))
                return false;
            (*next)++;
        }
    }
    return true;
}

int main(int argc, char **argv)
{
    long n, conc;
    if (argc != 4 || !parse_count(argv[2], &n) || !parse_count(argv[3], &conc)) {
        fprintf(stderr, "usage: pgenrich-floor BASE_URL N CONCURRENCY\n"
                        "  N GETs of BASE_URL/api/v2/entities/{1..N}, CONCURRENCY at a time\n");
        return 2;
    }
    const char *base = argv[1];
    if (conc > n)
        conc = n;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "floor: curl_global_init failed\n");
        return 1;
    }
    int rc = 1;
    CURLM *multi = curl_multi_init();
    json_tokener *tok = json_tokener_new();
    struct curl_slist *headers = curl_slist_append(NULL, "Accept: application/json");
    Slot *slots = calloc((size_t)conc, sizeof *slots);
    long next = 1;
    Counts c = {0, 0, 0};
    double t0 = 0;
    Loop loop = {epoll_create1(EPOLL_CLOEXEC), -1};
    if (!multi || !tok || !headers || !slots || loop.ep < 0)
        goto failed;
    /* One connection per handle, all kept in the pool between requests. */
    if (curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, conc) != CURLM_OK ||
        curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, conc) != CURLM_OK ||
        curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
        curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, &loop) != CURLM_OK ||
        curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer) != CURLM_OK ||
        curl_multi_setopt(multi, CURLMOPT_TIMERDATA, &loop) != CURLM_OK)
        goto failed;

    t0 = now_s();
    for (long i = 0; i < conc; i++) {
        if (!slot_init(&slots[i], headers) || !slot_start(multi, &slots[i], base, next))
            goto failed;
        next++;
    }
    while (c.done < n) {
        struct epoll_event evs[64];
        int running;
        int wait_ms = loop.timeout_ms < 0 ? 1000 : (int)loop.timeout_ms;
        int k = epoll_wait(loop.ep, evs, 64, wait_ms);
        if (k < 0 && errno != EINTR)
            goto failed;
        if (k <= 0) {
            if (curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running) != CURLM_OK)
                goto failed;
        }
        for (int i = 0; i < k; i++) {
            int flags = ((evs[i].events & EPOLLIN) ? CURL_CSELECT_IN : 0) |
                        ((evs[i].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
                        ((evs[i].events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
            if (curl_multi_socket_action(multi, evs[i].data.fd, flags, &running) != CURLM_OK)
                goto failed;
        }
        if (!drain(multi, tok, base, n, &next, &c))
            goto failed;
    }
    double secs = now_s() - t0;
    printf("floor: requests %ld, ok %ld, failed %ld, seconds %.3f, requests/s %.0f\n", c.done, c.ok,
           c.failed, secs, secs > 0 ? (double)c.done / secs : 0.0);
    rc = c.failed == 0 ? 0 : 1;

failed:
    if (rc != 0 && c.done < n)
        fprintf(stderr, "floor: stopped after %ld of %ld requests\n", c.done, n);
    for (long i = 0; slots && i < conc; i++) {
        if (slots[i].easy) {
            curl_multi_remove_handle(multi, slots[i].easy);
            curl_easy_cleanup(slots[i].easy);
        }
        free(slots[i].body);
    }
    free(slots);
    curl_slist_free_all(headers);
    if (tok)
        json_tokener_free(tok);
    if (multi)
        curl_multi_cleanup(multi);
    if (loop.ep >= 0)
        close(loop.ep);
    curl_global_cleanup();
    return rc;
}
