/*
 * hub_http.c - one HTTP exchange with the hub through libcurl (Debian's
 * libcurl4-openssl: TLS, proxies from http_proxy/https_proxy/no_proxy).
 * Redirects are not followed here: hub.c reads the hub's headers on the
 * 302 (X-Linked-Etag, X-Repo-Commit) and follows the Location itself,
 * sending Authorization only to the endpoint's own origin, as
 * huggingface_hub does.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "alloc.h"
#include "error.h"
#include "hub.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

/* curl_global_init is not thread-safe in every libcurl: run it once. */
static void curl_init_once(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* The state the callbacks share during one exchange. */
typedef struct xfer {
    const hub_req *rq;
    hub_resp *rs;
    bool started;  /* the first body byte arrived (status known) */
    bool to_fd;    /* this body goes to the fd (2xx) */
    bool failed;   /* a write to the fd failed */
    int write_errno;
    size_t body_cap;
} xfer;

/* Copies a header value (trimmed) into dst when name matches. */
static void take_header(const char *line, size_t len, const char *name, char *dst, size_t cap) {
    size_t nl = strlen(name);
    if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':') return;
    const char *v = line + nl + 1, *e = line + len;
    while (v < e && (*v == ' ' || *v == '\t')) v++;
    while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t')) e--;
    size_t n = (size_t)(e - v);
    if (n >= cap) n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

/* curl's header callback: the status line resets the headers (a 100
 * Continue or a proxy's CONNECT answer comes first); the rest are kept. */
static size_t on_header(char *buf, size_t size, size_t n, void *user) {
    xfer *x = user;
    size_t len = size * n;
    hub_resp *rs = x->rs;
    if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        rs->etag[0] = rs->linked_etag[0] = rs->repo_commit[0] = rs->error_code[0] = rs->error_msg[0] = 0;
        rs->location[0] = 0;
        rs->linked_size = rs->content_length = -1;
        const char *sp = memchr(buf, ' ', len);
        rs->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        return len;
    }
    char tmp[32];
    take_header(buf, len, "ETag", rs->etag, sizeof rs->etag);
    take_header(buf, len, "X-Linked-Etag", rs->linked_etag, sizeof rs->linked_etag);
    take_header(buf, len, "X-Repo-Commit", rs->repo_commit, sizeof rs->repo_commit);
    take_header(buf, len, "X-Error-Code", rs->error_code, sizeof rs->error_code);
    take_header(buf, len, "X-Error-Message", rs->error_msg, sizeof rs->error_msg);
    take_header(buf, len, "Location", rs->location, sizeof rs->location);
    tmp[0] = 0;
    take_header(buf, len, "X-Linked-Size", tmp, sizeof tmp);
    if (tmp[0] && isdigit((unsigned char)tmp[0])) rs->linked_size = strtoll(tmp, NULL, 10);
    tmp[0] = 0;
    take_header(buf, len, "Content-Length", tmp, sizeof tmp);
    if (tmp[0] && isdigit((unsigned char)tmp[0])) rs->content_length = strtoll(tmp, NULL, 10);
    return len;
}

/* Writes all of buf to fd (retrying short writes). */
static bool write_all(int fd, const char *buf, size_t len) {
    while (len) {
        ssize_t w = write(fd, buf, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        buf += w, len -= (size_t)w;
    }
    return true;
}

/* curl's write callback: a 2xx body goes to the fd (a 200 to a Range
 * request starts the file over), anything else to a capped buffer for
 * the error message. Returning less than len makes curl stop. */
static size_t on_body(char *buf, size_t size, size_t n, void *user) {
    xfer *x = user;
    size_t len = size * n;
    const hub_req *rq = x->rq;
    hub_resp *rs = x->rs;
    if (!x->started) {
        x->started = true;
        x->to_fd = rq->fd >= 0 && rs->status >= 200 && rs->status < 300;
        if (x->to_fd && rs->status == 200 && rq->offset > 0) {
            /* the server ignored Range: the whole file comes */
            if (ftruncate(rq->fd, 0) != 0 || lseek(rq->fd, 0, SEEK_SET) != 0) {
                x->failed = true, x->write_errno = errno;
                return 0;
            }
        }
    }
    if (x->to_fd) {
        if (!write_all(rq->fd, buf, len)) {
            x->failed = true, x->write_errno = errno;
            return 0;
        }
        rs->written += len;
        if (rq->progress_fn) {
            uint64_t base = rs->status == 206 ? rq->offset : 0;
            rq->progress_fn(rq->progress_path, base + rs->written, rq->progress_total, rq->progress_user);
        }
        return len;
    }
    size_t room = x->body_cap > rs->body_len ? x->body_cap - rs->body_len : 0;
    if (len > room) {
        if (rq->fd < 0 && rs->status >= 200 && rs->status < 300) return 0; /* too big: refuse */
        len = room; /* an error page: keep its start */
    }
    if (len) {
        char *nb = se_realloc(rs->body, rs->body_len + len + 1);
        if (!nb) return 0;
        rs->body = nb;
        memcpy(rs->body + rs->body_len, buf, len);
        rs->body_len += len;
        rs->body[rs->body_len] = 0;
    }
    return size * n;
}

se_status se_hub_http(const hub_req *rq, hub_resp *rs, se_error *err) {
    pthread_once(&curl_once, curl_init_once);
    memset(rs, 0, sizeof *rs);
    rs->linked_size = rs->content_length = -1;
    CURL *c = curl_easy_init();
    if (!c) return se_err(err, SE_E_NOMEM, "hub: cannot start libcurl");
    xfer x = {.rq = rq, .rs = rs, .body_cap = rq->body_max ? rq->body_max : 4096};
    struct curl_slist *hdr = NULL;
    char auth[4200], range[64];
    bool ok = true;
    if (rq->token && rq->token[0]) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", rq->token);
        ok = (hdr = curl_slist_append(hdr, auth)) != NULL;
    }
    struct curl_slist *h2 = ok ? curl_slist_append(hdr, "Accept-Encoding: identity") : NULL;
    if (!h2) ok = false; else hdr = h2;
    if (!ok) {
        curl_slist_free_all(hdr);
        curl_easy_cleanup(c);
        return se_err(err, SE_E_NOMEM, "out of memory");
    }
    char ua[64];
    snprintf(ua, sizeof ua, "sembed/%s; libcurl", se_version());
    curl_easy_setopt(c, CURLOPT_URL, rq->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_USERAGENT, ua);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    /* a stalled transfer (under 1 byte/s for 30 s) is a cut connection */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 30L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
    if (strcmp(rq->method, "HEAD") == 0) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (rq->fd >= 0 && rq->offset > 0) {
        snprintf(range, sizeof range, "%llu-", (unsigned long long)rq->offset);
        curl_easy_setopt(c, CURLOPT_RANGE, range);
    }
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    if (curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code) rs->status = code;
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    if (x.failed) return se_err(err, SE_E_IO, "hub: writing the download: %s", strerror(x.write_errno));
    rs->unreachable = rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_RESOLVE_PROXY || rc == CURLE_COULDNT_CONNECT;
    if (rc != CURLE_OK) return se_err(err, SE_E_IO, "%s: %s", rq->url, curl_easy_strerror(rc));
    return SE_OK;
}

void se_hub_resp_free(hub_resp *rs) {
    se_free(rs->body);
    rs->body = NULL;
    rs->body_len = 0;
}

char *se_hub_url_resolve(const char *base, const char *location) {
    CURLU *u = curl_url();
    if (!u) return NULL;
    char *out = NULL, *s = NULL;
    if (curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_URL, location, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_URL, &s, 0) == CURLUE_OK) {
        out = se_strdup(s);
    }
    curl_free(s);
    curl_url_cleanup(u);
    return out;
}

/* scheme://host:port of url into buf (the port made explicit). */
static bool origin_of(const char *url, char *buf, size_t cap) {
    CURLU *u = curl_url();
    if (!u) return false;
    char *sc = NULL, *ho = NULL, *po = NULL;
    bool ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_SCHEME, &sc, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_HOST, &ho, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_PORT, &po, CURLU_DEFAULT_PORT) == CURLUE_OK;
    if (ok) {
        for (char *p = ho; *p; p++) *p = (char)tolower((unsigned char)*p);
        snprintf(buf, cap, "%s://%s:%s", sc, ho, po);
    }
    curl_free(sc), curl_free(ho), curl_free(po);
    curl_url_cleanup(u);
    return ok;
}

bool se_hub_same_origin(const char *a, const char *b) {
    char oa[600], ob[600];
    return origin_of(a, oa, sizeof oa) && origin_of(b, ob, sizeof ob) && strcmp(oa, ob) == 0;
}

char *se_hub_escape(const char *s, bool keep_slash) {
    size_t n = strlen(s);
    if (n > (SIZE_MAX - 1) / 3) return NULL;
    char *out = se_malloc(3 * n + 1), *o = out;
    if (!out) return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~' || (keep_slash && *p == '/'))
            *o++ = (char)*p;
        else
            o += sprintf(o, "%%%02X", *p);
    }
    *o = 0;
    return out;
}
