/*
 * hub.c - models by name from the Hugging Face hub: se_hub_pull speaks
 * huggingface_hub's protocol (the revision's API answer for its commit and
 * files, then HEAD and GET on {endpoint}/{repo}/resolve/{commit}/{path}
 * with X-Repo-Commit, ETag, X-Linked-Etag, X-Linked-Size and a redirect to
 * the CDN), chooses the files a sentence-transformers model needs, and
 * writes them into huggingface_hub's cache (hub_cache.c) safely: a partial
 * download stays in blobs/<etag>.incomplete and resumes with Range; a
 * blob is checked before it is renamed into place and linked.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "alloc.h"
#include "error.h"
#include "hub.h"

se_hub_params se_hub_default_params(void) {
    se_hub_params p = {0};
    p.n_retries = 5;
    p.retry_ms = 500;
    return p;
}

bool se_hub_is_repo_id(const char *name) {
    if (!name) return false;
    const char *slash = strchr(name, '/');
    if (!slash || strchr(slash + 1, '/')) return false;
    const char *parts[2] = {name, slash + 1};
    size_t lens[2] = {(size_t)(slash - name), strlen(slash + 1)};
    for (int k = 0; k < 2; k++) {
        const char *s = parts[k];
        size_t n = lens[k];
        /* the hub's rule: word characters, '-' and '.', starting and ending
         * with a word character */
        if (n == 0 || n > 96 || s[0] == '.' || s[0] == '-' || s[n - 1] == '.' || s[n - 1] == '-') return false;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)s[i];
            if (!isalnum(c) && c != '-' && c != '_' && c != '.') return false;
            if (c == '.' && i + 1 < n && s[i + 1] == '.') return false;
            if (c == '-' && i + 1 < n && s[i + 1] == '-') return false; /* "--" is the cache's separator */
        }
    }
    return true;
}

/* The state of one pull. */
typedef struct hub {
    const se_hub_params *p;
    const char *repo;
    char *root, *repo_dir, *endpoint, *token;
    const char *revision;
    char commit[41];
} hub;

/* Sends a notice to the caller's log function. */
static void note(const hub *h, const char *f, ...) __attribute__((format(printf, 2, 3)));
static void note(const hub *h, const char *f, ...) {
    if (!h->p->log_fn) return;
    char msg[512];
    va_list ap;
    va_start(ap, f);
    vsnprintf(msg, sizeof msg, f, ap);
    va_end(ap);
    h->p->log_fn(SE_LOG_INFO, msg, h->p->log_user);
}

/* True when HF_HUB_OFFLINE says so (huggingface_hub's truthy values). */
static bool env_offline(void) {
    const char *e = getenv("HF_HUB_OFFLINE");
    if (!e) return false;
    return !strcmp(e, "1") || !strcasecmp(e, "true") || !strcasecmp(e, "yes") || !strcasecmp(e, "on");
}

/* The token: params, HF_TOKEN, HUGGING_FACE_HUB_TOKEN, else the token file
 * (HF_TOKEN_PATH, else HF_HOME/token, else ~/.cache/huggingface/token).
 * se_malloc'd; NULL for none. */
static char *find_token(const se_hub_params *p) {
    if (p->token) return p->token[0] ? se_strdup(p->token) : NULL;
    const char *e;
    if ((e = getenv("HF_TOKEN")) && *e) return se_strdup(e);
    if ((e = getenv("HUGGING_FACE_HUB_TOKEN")) && *e) return se_strdup(e);
    char path[4096];
    if ((e = getenv("HF_TOKEN_PATH")) && *e) snprintf(path, sizeof path, "%s", e);
    else if ((e = getenv("HF_HOME")) && *e) snprintf(path, sizeof path, "%s/token", e);
    else if ((e = getenv("HOME")) && *e) snprintf(path, sizeof path, "%s/.cache/huggingface/token", e);
    else return NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    while (n && isspace((unsigned char)buf[n - 1])) buf[--n] = 0;
    return n ? se_strdup(buf) : NULL;
}

/* Sleeps ms milliseconds. */
static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* True for the statuses worth retrying: 5xx and 429. */
static bool retryable(long status) {
    return status == 429 || (status >= 500 && status <= 599);
}

/* The message for an HTTP error status on what (a file or the revision). */
static se_status http_error(const hub *h, const hub_resp *r, const char *what, se_error *err) {
    const char *ec = r->error_code, *em = r->error_msg;
    char extra[300] = "";
    if (em[0]) snprintf(extra, sizeof extra, " (hub: %s)", em);
    if (!strcmp(ec, "GatedRepo") || ((r->status == 401 || r->status == 403) && strcmp(ec, "RepoNotFound") != 0))
        return se_err(err, SE_E_IO,
                      "%s: HTTP %ld: %s%s%s", h->repo, r->status,
                      h->token ? "the token was refused: the model is gated or private and this token has no access "
                                 "(accept its terms on the hub with the token's account)"
                               : "the model is gated or private and needs a token (--token or HF_TOKEN)",
                      extra, "");
    if (!strcmp(ec, "RepoNotFound") || (r->status == 401 && !h->token))
        return se_err(err, SE_E_IO, "%s: HTTP %ld: repository not found on %s (or private: needs a token)", h->repo,
                      r->status, h->endpoint);
    if (!strcmp(ec, "RevisionNotFound"))
        return se_err(err, SE_E_IO, "%s: HTTP %ld: revision '%s' not found", h->repo, r->status, h->revision);
    if (!strcmp(ec, "EntryNotFound"))
        return se_err(err, SE_E_IO, "%s: HTTP %ld: %s not found at %s%s", h->repo, r->status, what, h->revision, extra);
    if (r->status == 404)
        return se_err(err, SE_E_IO, "%s: HTTP 404: repository or revision '%s' not found on %s", h->repo, h->revision,
                      h->endpoint);
    if (retryable(r->status))
        return se_err(err, SE_E_IO, "%s: %s: HTTP %ld from the server after %d retries%s", h->repo, what, r->status,
                      (int)h->p->n_retries, extra);
    return se_err(err, SE_E_IO, "%s: %s: HTTP %ld%s", h->repo, what, r->status, extra);
}

/* One request with retries on transport errors, 5xx and 429 (waiting
 * retry_ms, doubled each time). rq->offset is refreshed from the fd's size
 * before each try of a download, so a cut connection resumes. */
static se_status request(const hub *h, hub_req *rq, hub_resp *rs, se_error *err) {
    long wait = h->p->retry_ms > 0 ? h->p->retry_ms : 0;
    for (int attempt = 0;; attempt++) {
        if (rq->fd >= 0) {
            struct stat st;
            rq->offset = fstat(rq->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
            lseek(rq->fd, 0, SEEK_END);
        }
        se_status s = se_hub_http(rq, rs, err);
        if (s != SE_OK && rs->unreachable) {
            /* no host or no listener: offline, no point in waiting */
            se_err_prefix(err, "%s: cannot reach the hub at %s (offline? HF_HUB_OFFLINE=1 uses the cache only)", h->repo,
                          h->endpoint);
            return s;
        }
        bool again = s != SE_OK ? s == SE_E_IO : retryable(rs->status);
        if (!again || attempt >= h->p->n_retries) {
            if (s == SE_OK) return SE_OK;
            se_err_prefix(err, "%s: the transfer failed (after %d retries)", h->repo, attempt);
            return s;
        }
        if (s == SE_OK) note(h, "%s: HTTP %ld, retrying in %ld ms", rq->url, rs->status, wait);
        else note(h, "%s, retrying in %ld ms", err ? err->msg : "transfer failed", wait);
        if (rs->written > 0) attempt = -1; /* progress was made: a fresh set of retries */
        se_hub_resp_free(rs);
        sleep_ms(wait);
        if (wait < 30000) wait *= 2;
    }
}

/* The etag without W/ and quotes, checked to be a safe file name. */
static bool clean_etag(const char *in, char *out, size_t cap) {
    if (!strncmp(in, "W/", 2)) in += 2;
    size_t n = strlen(in);
    if (n >= 2 && in[0] == '"' && in[n - 1] == '"') in++, n -= 2;
    if (n == 0 || n >= cap) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (!isalnum(c) && c != '-' && c != '_' && c != '.') return false;
    }
    if (in[0] == '.') return false;
    memcpy(out, in, n);
    out[n] = 0;
    return true;
}

/* A repository path is safe to join onto the snapshot: relative, no "."
 * or ".." component, no empty one, no backslash. */
static bool safe_path(const char *p) {
    if (!p[0] || p[0] == '/' || strchr(p, '\\') || strlen(p) > 1024) return false;
    const char *s = p;
    for (;;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) return false;
        if (!e) return true;
        s = e + 1;
    }
}

/* ---- which files: what a sentence-transformers model needs ---- */

/* True for a module folder of sentence-transformers ("1_Pooling",
 * "2_Dense", "3_Normalize"): digits, '_', a name. */
static bool module_dir(const char *d, size_t n) {
    size_t i = 0;
    while (i < n && isdigit((unsigned char)d[i])) i++;
    return i > 0 && i + 1 < n && d[i] == '_';
}

/* The file kinds of the default selection. */
enum { PICK_NO, PICK_YES, PICK_ST, PICK_BIN };

/* What the default selection does with path: config, modules and
 * tokenizer files; weights (PICK_ST safetensors, PICK_BIN
 * pytorch_model.bin, used only when its folder has no safetensors); at the
 * top level or in a module folder. onnx/, openvino/, TF, Flax, .h5 are
 * never taken. */
static int default_pick(const char *path) {
    const char *base = strrchr(path, '/');
    if (base) {
        if (strchr(path, '/') != base || !module_dir(path, (size_t)(base - path))) return PICK_NO;
        base++;
    } else {
        base = path;
    }
    static const char *const names[] = {
        "modules.json", "sentence_bert_config.json", "tokenizer.json", "tokenizer_config.json",
        "special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt", "added_tokens.json",
        "sentencepiece.bpe.model", "spiece.model", "tokenizer.model", "sentencepiece.model"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(base, names[i])) return PICK_YES;
    if (!fnmatch("config*.json", base, 0)) return PICK_YES;
    if (!strcmp(base, "model.safetensors") || !strcmp(base, "model.safetensors.index.json") ||
        !fnmatch("model-[0-9]*-of-[0-9]*.safetensors", base, 0))
        return PICK_ST;
    if (!strcmp(base, "pytorch_model.bin") || !strcmp(base, "pytorch_model.bin.index.json") ||
        !fnmatch("pytorch_model-[0-9]*-of-[0-9]*.bin", base, 0))
        return PICK_BIN;
    return PICK_NO;
}

/* Length of path's folder part ("" at the top level). */
static size_t dir_len(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? (size_t)(s - path) : 0;
}

/* Marks in want[] the files to fetch: those matching params' include
 * patterns, or the default selection. */
static void select_files(const se_hub_params *p, const char *const *paths, size_t n, bool *want) {
    for (size_t i = 0; i < n; i++) {
        want[i] = false;
        if (p->include && p->n_include) {
            for (size_t k = 0; k < p->n_include; k++)
                if (p->include[k] && !fnmatch(p->include[k], paths[i], 0)) want[i] = true;
            continue;
        }
        int k = default_pick(paths[i]);
        if (k == PICK_YES || k == PICK_ST) want[i] = true;
        if (k == PICK_BIN) {
            /* only when the same folder has no safetensors */
            bool st = false;
            for (size_t j = 0; j < n && !st; j++)
                st = default_pick(paths[j]) == PICK_ST && dir_len(paths[j]) == dir_len(paths[i]) &&
                     !strncmp(paths[j], paths[i], dir_len(paths[i]));
            want[i] = !st;
        }
    }
}

/* ---- one file ---- */

/* Downloads url into fd (resuming from its size), following redirects
 * (Authorization only to the endpoint's origin). */
static se_status download(const hub *h, const char *rel, const char *url0, int fd, uint64_t total, se_error *err) {
    char *url = se_strdup(url0);
    se_status s = SE_OK;
    for (int hop = 0; url; hop++) {
        hub_req rq = {.method = "GET", .url = url, .fd = fd, .body_max = 4096, .progress_fn = h->p->progress_fn,
                      .progress_user = h->p->progress_user, .progress_path = rel, .progress_total = total};
        rq.token = se_hub_same_origin(url, h->endpoint) ? h->token : NULL;
        hub_resp rs;
        s = request(h, &rq, &rs, err);
        if (s != SE_OK) break;
        if (rs.status >= 300 && rs.status < 400 && rs.location[0] && hop < 10) {
            char *next = se_hub_url_resolve(url, rs.location);
            se_free(url);
            url = next;
            se_hub_resp_free(&rs);
            if (!url) s = se_err(err, SE_E_IO, "%s: %s: a redirect to a bad URL", h->repo, rel);
            continue;
        }
        if (rs.status == 416 && rq.offset > 0 && total && rq.offset >= total) s = SE_OK; /* already whole */
        else if (rs.status != 200 && rs.status != 206) s = http_error(h, &rs, rel, err);
        se_hub_resp_free(&rs);
        break;
    }
    if (!url && s == SE_OK) s = se_err(err, SE_E_NOMEM, "out of memory");
    se_free(url);
    return s;
}

/* Fetches rel at h->commit into the cache (unless its blob is there and
 * sound) and links it into the snapshot. */
static se_status fetch_file(hub *h, const char *rel, se_error *err) {
    char *erel = se_hub_escape(rel, true), *erev = se_hub_escape(h->commit, false);
    char *url = NULL, *blob = NULL, *part = NULL, *get_url = NULL;
    se_status s = SE_OK;
    int lock = -1, fd = -1;
    hub_resp rs = {0};
    size_t un = strlen(h->endpoint) + strlen(h->repo) + (erel ? strlen(erel) : 0) + 64;
    if (!erel || !erev || !(url = se_malloc(un))) {
        s = se_err(err, SE_E_NOMEM, "out of memory");
        goto done;
    }
    snprintf(url, un, "%s/%s/resolve/%s/%s", h->endpoint, h->repo, erev, erel);
    /* HEAD: the etag (X-Linked-Etag for LFS), the size, the CDN's URL. A
     * redirect on the hub itself without an etag (a renamed repository) is
     * followed, as huggingface_hub follows relative redirects. */
    for (int hop = 0;; hop++) {
        hub_req rq = {.method = "HEAD", .url = url, .fd = -1, .token = h->token};
        if ((s = request(h, &rq, &rs, err)) != SE_OK) goto done;
        if (!(rs.status >= 300 && rs.status < 400 && rs.location[0] && !rs.etag[0] && !rs.linked_etag[0]) || hop == 5)
            break;
        char *next = se_hub_url_resolve(url, rs.location);
        if (!next || !se_hub_same_origin(next, h->endpoint)) {
            se_free(next);
            break;
        }
        se_free(url);
        url = next;
        se_hub_resp_free(&rs);
    }
    if (rs.status >= 300 && rs.status < 400 && rs.location[0]) {
        get_url = se_hub_url_resolve(url, rs.location);
    } else if (rs.status == 200) {
        get_url = se_strdup(url);
    } else {
        s = http_error(h, &rs, rel, err);
        goto done;
    }
    char etag[160];
    if (!clean_etag(rs.linked_etag[0] ? rs.linked_etag : rs.etag, etag, sizeof etag)) {
        s = se_err(err, SE_E_IO, "%s: %s: the hub sent no usable ETag ('%s')", h->repo, rel,
                   rs.linked_etag[0] ? rs.linked_etag : rs.etag);
        goto done;
    }
    int64_t size = rs.linked_size >= 0 ? rs.linked_size : rs.status == 200 ? rs.content_length : -1;
    size_t bn = strlen(h->repo_dir) + strlen(etag) + 32;
    if (!get_url || !(blob = se_malloc(bn)) || !(part = se_malloc(bn))) {
        s = se_err(err, SE_E_NOMEM, "out of memory");
        goto done;
    }
    snprintf(blob, bn, "%s/blobs/%s", h->repo_dir, etag);
    snprintf(part, bn, "%s/blobs/%s.incomplete", h->repo_dir, etag);
    if ((lock = se_hub_lock(h->root, h->repo, etag, err)) < 0) {
        s = err ? err->code : SE_E_IO;
        goto done;
    }
    struct stat st;
    if (lstat(blob, &st) == 0) {
        bool ok;
        if ((s = se_hub_verify(blob, etag, size, &ok, err)) != SE_OK) goto done;
        if (ok) goto link;
        note(h, "%s: %s: the cached blob %s is corrupt (size or checksum): fetching it again", h->repo, rel, blob);
        if (unlink(blob) != 0) {
            s = se_err(err, SE_E_IO, "%s: cannot remove: %s", blob, strerror(errno));
            goto done;
        }
    }
    for (int round = 0;; round++) {
        fd = open(part, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            s = se_err(err, SE_E_IO, "%s: cannot open: %s", part, strerror(errno));
            goto done;
        }
        if (size >= 0 && fstat(fd, &st) == 0 && st.st_size > size && ftruncate(fd, 0) != 0) {
            s = se_err(err, SE_E_IO, "%s: %s", part, strerror(errno));
            goto done;
        }
        if (size == 0 || (fstat(fd, &st) == 0 && size > 0 && st.st_size == size)) s = SE_OK; /* nothing to fetch */
        else s = download(h, rel, get_url, fd, size > 0 ? (uint64_t)size : 0, err);
        if (s == SE_OK && fsync(fd) != 0) s = se_err(err, SE_E_IO, "%s: %s", part, strerror(errno));
        close(fd), fd = -1;
        if (s != SE_OK) goto done; /* the .incomplete stays, for a resume */
        bool ok;
        if ((s = se_hub_verify(part, etag, size, &ok, err)) != SE_OK) goto done;
        if (ok) break;
        unlink(part);
        if (round == 1) {
            s = se_err(err, SE_E_IO, "%s: %s: the download does not match its checksum or size (etag %s, %lld bytes)",
                       h->repo, rel, etag, (long long)size);
            goto done;
        }
        note(h, "%s: %s: the download does not match its checksum: fetching it again", h->repo, rel);
    }
    if (rename(part, blob) != 0) {
        s = se_err(err, SE_E_IO, "%s: cannot rename to %s: %s", part, blob, strerror(errno));
        goto done;
    }
link:
    s = se_hub_link(h->repo_dir, h->commit, rel, etag, err);
    if (s == SE_OK && h->p->progress_fn && size >= 0)
        h->p->progress_fn(rel, (uint64_t)size, (uint64_t)size, h->p->progress_user);
done:
    if (fd >= 0) close(fd);
    se_hub_unlock(lock);
    se_hub_resp_free(&rs);
    se_free(erel), se_free(erev), se_free(url), se_free(blob), se_free(part), se_free(get_url);
    return s;
}

/* ---- the revision ---- */

/* GET {endpoint}/api/models/{repo}/revision/{rev}: the commit and the file
 * list (se_malloc'd strings in *paths). */
static se_status revision_info(hub *h, char ***paths, size_t *n_paths, se_error *err) {
    char *erev = se_hub_escape(h->revision, false);
    size_t un = strlen(h->endpoint) + strlen(h->repo) + (erev ? strlen(erev) : 0) + 64;
    char *url = erev ? se_malloc(un) : NULL;
    se_status s = SE_OK;
    json_t *j = NULL;
    hub_resp rs = {0};
    *paths = NULL, *n_paths = 0;
    if (!url) {
        s = se_err(err, SE_E_NOMEM, "out of memory");
        goto done;
    }
    snprintf(url, un, "%s/api/models/%s/revision/%s", h->endpoint, h->repo, erev);
    hub_req rq = {.method = "GET", .url = url, .fd = -1, .token = h->token, .body_max = 64u << 20};
    if ((s = request(h, &rq, &rs, err)) != SE_OK) goto done;
    if (rs.status != 200) {
        s = http_error(h, &rs, "the revision's information", err);
        goto done;
    }
    json_error_t je;
    j = json_loadb(rs.body ? rs.body : "", rs.body_len, 0, &je);
    json_t *sha = j ? json_object_get(j, "sha") : NULL, *sib = j ? json_object_get(j, "siblings") : NULL;
    if (!j || !json_is_string(sha) || !se_hub_is_commit(json_string_value(sha)) || !json_is_array(sib)) {
        s = se_err(err, SE_E_FORMAT, "%s: %s: not the hub's answer (a JSON object with 'sha', 40 hex digits, and "
                   "'siblings')%s%s", h->repo, url, j ? "" : ": ", j ? "" : je.text);
        goto done;
    }
    memcpy(h->commit, json_string_value(sha), 41);
    size_t n = json_array_size(sib);
    *paths = se_calloc(n ? n : 1, sizeof **paths);
    if (!*paths) {
        s = se_err(err, SE_E_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *f = json_object_get(json_array_get(sib, i), "rfilename");
        if (!json_is_string(f) || !safe_path(json_string_value(f))) {
            s = se_err(err, SE_E_FORMAT, "%s: siblings[%zu].rfilename is missing or not a safe relative path", h->repo, i);
            goto done;
        }
        if (!((*paths)[i] = se_strdup(json_string_value(f)))) {
            s = se_err(err, SE_E_NOMEM, "out of memory");
            goto done;
        }
        *n_paths = i + 1;
    }
done:
    if (j) json_decref(j);
    se_hub_resp_free(&rs);
    se_free(url), se_free(erev);
    return s;
}

/* Fills the state of a pull or a resolution from params and the
 * environment. */
static se_status hub_open(hub *h, const char *repo_id, const se_hub_params *params, se_error *err) {
    memset(h, 0, sizeof *h);
    h->p = params;
    h->repo = repo_id;
    h->revision = params->revision && params->revision[0] ? params->revision : "main";
    if (!se_hub_is_repo_id(repo_id))
        return se_err(err, SE_E_INVALID, "'%s' is not a hub repository id (ORG/NAME)", repo_id);
    if (!safe_path(h->revision))
        return se_err(err, SE_E_INVALID, "revision '%s': not a branch, tag or commit name", h->revision);
    const char *ep = params->endpoint && params->endpoint[0] ? params->endpoint : getenv("HF_ENDPOINT");
    if (!ep || !ep[0]) ep = "https://huggingface.co";
    h->endpoint = se_strdup(ep);
    h->root = se_hub_cache_root(params);
    h->repo_dir = h->root ? se_hub_repo_dir(h->root, repo_id) : NULL;
    if (!h->endpoint || !h->repo_dir) return se_err(err, SE_E_NOMEM, "out of memory");
    size_t L = strlen(h->endpoint);
    while (L > 0 && h->endpoint[L - 1] == '/') h->endpoint[--L] = 0;
    return SE_OK;
}

/* Frees what hub_open and the pull allocated. */
static void hub_close(hub *h) {
    se_free(h->root), se_free(h->repo_dir), se_free(h->endpoint);
    if (h->token) memset(h->token, 0, strlen(h->token));
    se_free(h->token);
}

/* The cached snapshot folder of h's revision (refs/<revision>, or the
 * commit itself) into snap, without a connection; false when absent. */
static bool cached_snapshot(const hub *h, char *snap, size_t cap) {
    char commit[41];
    if (se_hub_is_commit(h->revision)) memcpy(commit, h->revision, 41);
    else if (!se_hub_read_ref(h->repo_dir, h->revision, commit)) return false;
    struct stat st;
    int n = snprintf(snap, cap, "%s/snapshots/%s", h->repo_dir, commit);
    return n > 0 && (size_t)n < cap && stat(snap, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Copies path into the caller's buffer. */
static se_status out_path(const char *path, char *dir, size_t cap, se_error *err) {
    size_t n = strlen(path);
    if (!dir || n >= cap) return se_err(err, SE_E_BUFFER, "the snapshot path needs %zu bytes", n + 1);
    memcpy(dir, path, n + 1);
    return SE_OK;
}

se_status se_hub_pull(const char *repo_id, const se_hub_params *params, char *dir, size_t cap, se_error *err) {
    se_hub_params dp = se_hub_default_params();
    if (!params) params = &dp;
    if (!repo_id) return se_err(err, SE_E_INVALID, "se_hub_pull: repo_id must not be NULL");
    hub h;
    se_status s = hub_open(&h, repo_id, params, err);
    char **paths = NULL;
    size_t n = 0;
    bool *want = NULL;
    if (s != SE_OK) goto done;
    if (params->offline || env_offline()) {
        /* as huggingface_hub's snapshot_download offline: the cached snapshot, or an error */
        char snap[4096];
        if (cached_snapshot(&h, snap, sizeof snap)) s = out_path(snap, dir, cap, err);
        else s = se_err(err, SE_E_IO, "%s (revision %s) is not in the cache at %s, and offline (HF_HUB_OFFLINE is set): no "
                        "connection made", repo_id, h.revision, h.root);
        goto done;
    }
    h.token = find_token(params);
    for (const char *t = h.token; t && *t; t++)
        if ((unsigned char)*t < 0x21 || *t == 0x7f) {
            s = se_err(err, SE_E_INVALID, "%s: the token has a blank or control character", repo_id);
            goto done;
        }
    if ((s = revision_info(&h, &paths, &n, err)) != SE_OK) goto done;
    if (!(want = se_calloc(n ? n : 1, sizeof *want))) {
        s = se_err(err, SE_E_NOMEM, "out of memory");
        goto done;
    }
    select_files(params, (const char *const *)paths, n, want);
    size_t n_want = 0;
    for (size_t i = 0; i < n; i++) n_want += want[i];
    if (n_want == 0) {
        s = se_err(err, SE_E_IO, "%s: none of its %zu files %s", repo_id, n,
                   params->n_include ? "matches the --include patterns" : "is one a sentence-transformers model needs");
        goto done;
    }
    char blobs[4096];
    if (snprintf(blobs, sizeof blobs, "%s/blobs", h.repo_dir) >= (int)sizeof blobs) {
        s = se_err(err, SE_E_IO, "%s: the cache path is too long", h.repo_dir);
        goto done;
    }
    s = se_hub_mkdirs(blobs, err);
    for (size_t i = 0; i < n && s == SE_OK; i++)
        if (want[i]) s = fetch_file(&h, paths[i], err);
    if (s != SE_OK) goto done;
    if (strcmp(h.revision, h.commit) != 0 && (s = se_hub_write_ref(h.repo_dir, h.revision, h.commit, err)) != SE_OK)
        goto done;
    char *snap = se_malloc(strlen(h.repo_dir) + 64);
    if (!snap) {
        s = se_err(err, SE_E_NOMEM, "out of memory");
        goto done;
    }
    sprintf(snap, "%s/snapshots/%s", h.repo_dir, h.commit);
    s = out_path(snap, dir, cap, err);
    se_free(snap);
done:
    for (size_t i = 0; i < n; i++) se_free(paths[i]);
    se_free(paths), se_free(want);
    hub_close(&h);
    return s;
}

se_status se_hub_resolve(const char *repo_id, const se_hub_params *params, char *dir, size_t cap, se_error *err) {
    se_hub_params dp = se_hub_default_params();
    if (!params) params = &dp;
    if (!repo_id) return se_err(err, SE_E_INVALID, "se_hub_resolve: repo_id must not be NULL");
    hub h;
    se_status s = hub_open(&h, repo_id, params, err);
    if (s != SE_OK) {
        hub_close(&h);
        return s;
    }
    char snap[4096];
    if (cached_snapshot(&h, snap, sizeof snap)) s = out_path(snap, dir, cap, err);
    else s = se_hub_pull(repo_id, params, dir, cap, err); /* offline: says it is not cached */
    hub_close(&h);
    return s;
}
