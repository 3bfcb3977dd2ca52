/*
 * hub.h - private declarations of the hub client (hub.c: pulls and
 * resolution; hub_cache.c: huggingface_hub's cache layout; hub_http.c:
 * one HTTP exchange through libcurl).
 */
#ifndef SE_HUB_H
#define SE_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sembed.h"

/* What one HTTP exchange returned. Strings are empty when the header was
 * absent; sizes are -1 when unknown. */
typedef struct hub_resp {
    long status;
    char etag[192];        /* ETag, as sent */
    char linked_etag[192]; /* X-Linked-Etag: an LFS file's sha256 */
    char repo_commit[96];  /* X-Repo-Commit */
    char error_code[64];   /* X-Error-Code (RepoNotFound, RevisionNotFound, GatedRepo, ...) */
    char error_msg[256];   /* X-Error-Message */
    char location[2048];   /* Location of a redirect */
    int64_t linked_size;   /* X-Linked-Size */
    int64_t content_length;
    char *body;            /* the body (no fd, or an error status); se_free */
    size_t body_len;
    uint64_t written;      /* bytes written to the fd by this exchange */
    bool unreachable;      /* the host was not found or refused the connection */
} hub_resp;

/* One request. With fd >= 0 a 2xx body is written to fd from offset (a
 * Range request when offset > 0; a 200 answer to it rewrites fd from 0). */
typedef struct hub_req {
    const char *method; /* "GET" or "HEAD" */
    const char *url;
    const char *token;  /* Authorization: Bearer; NULL for none */
    int fd;
    uint64_t offset;
    size_t body_max;    /* cap of an in-memory body */
    se_hub_progress_fn progress_fn;
    void *progress_user;
    const char *progress_path;
    uint64_t progress_total;
} hub_req;

/* Performs rq without following redirects. SE_OK when a response arrived
 * (whatever its status); SE_E_IO for a transport failure (refused, cut
 * connection, timeout), its message naming the URL and curl's reason.
 * Thread-safe. */
se_status se_hub_http(const hub_req *rq, hub_resp *rs, se_error *err);

/* Frees rs->body. */
void se_hub_resp_free(hub_resp *rs);

/* The absolute URL of location relative to base, se_malloc'd; NULL when
 * it cannot be parsed. */
char *se_hub_url_resolve(const char *base, const char *location);

/* True when a and b have the same scheme, host and port (the
 * Authorization header only goes to the endpoint's origin). */
bool se_hub_same_origin(const char *a, const char *b);

/* URL-escapes s (every byte but unreserved ones; '/' kept when keep_slash),
 * se_malloc'd. */
char *se_hub_escape(const char *s, bool keep_slash);

/* ---- cache layout (hub_cache.c) ---- */

/* The cache root from params or the environment, se_malloc'd. */
char *se_hub_cache_root(const se_hub_params *p);

/* "<root>/models--ORG--NAME", se_malloc'd. */
char *se_hub_repo_dir(const char *root, const char *repo_id);

/* mkdir -p path (mode 0755). */
se_status se_hub_mkdirs(const char *path, se_error *err);

/* Checks that path is a file of size bytes (size < 0: any) whose digest
 * matches etag: the sha256 of an LFS file (64 hex digits) or git's blob
 * sha1 (40 hex digits); other etags are not checked. *ok is the answer;
 * SE_E_IO only when the file cannot be read. */
se_status se_hub_verify(const char *path, const char *etag, int64_t size, bool *ok, se_error *err);

/* Makes snapshots/<commit>/<rel> a relative symlink to blobs/<etag>
 * (replacing what was there atomically). */
se_status se_hub_link(const char *repo_dir, const char *commit, const char *rel, const char *etag, se_error *err);

/* Takes huggingface_hub's lock <root>/.locks/models--ORG--NAME/<etag>.lock
 * (flock, waits); returns the fd to pass to se_hub_unlock, or -1 with err. */
int se_hub_lock(const char *root, const char *repo_id, const char *etag, se_error *err);
void se_hub_unlock(int fd);

/* Reads refs/<revision> into commit (41 bytes); false when absent. */
bool se_hub_read_ref(const char *repo_dir, const char *revision, char commit[41]);

/* Writes refs/<revision> = commit atomically. */
se_status se_hub_write_ref(const char *repo_dir, const char *revision, const char *commit, se_error *err);

/* True when s is 40 lowercase hex digits (a commit id). */
bool se_hub_is_commit(const char *s);

#endif
