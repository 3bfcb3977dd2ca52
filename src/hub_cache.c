/*
 * hub_cache.c - huggingface_hub's cache layout: where the cache is, the
 * models--ORG--NAME folders, blob checks (sha256 of LFS files, git's sha1
 * of the others, with OpenSSL's EVP from libcrypto, which Debian's libcurl
 * already links), relative snapshot symlinks, refs, lock files, and the
 * listing and removal behind `sembed models`.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "alloc.h"
#include "error.h"
#include "hub.h"

/* A se_malloc'd printf. */
static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    if (n < 0) return NULL;
    char *s = se_malloc((size_t)n + 1);
    if (!s) return NULL;
    va_start(ap, f);
    vsnprintf(s, (size_t)n + 1, f, ap);
    va_end(ap);
    return s;
}

char *se_hub_cache_root(const se_hub_params *p) {
    if (p && p->cache_dir && p->cache_dir[0]) return se_strdup(p->cache_dir);
    const char *e;
    if ((e = getenv("HF_HUB_CACHE")) && *e) return se_strdup(e);
    if ((e = getenv("HUGGINGFACE_HUB_CACHE")) && *e) return se_strdup(e);
    if ((e = getenv("HF_HOME")) && *e) return fmt("%s/hub", e);
    if ((e = getenv("XDG_CACHE_HOME")) && *e) return fmt("%s/huggingface/hub", e);
    if ((e = getenv("HOME")) && *e) return fmt("%s/.cache/huggingface/hub", e);
    return se_strdup(".cache/huggingface/hub");
}

char *se_hub_repo_dir(const char *root, const char *repo_id) {
    const char *slash = strchr(repo_id, '/');
    if (!slash) return NULL;
    return fmt("%s/models--%.*s--%s", root, (int)(slash - repo_id), repo_id, slash + 1);
}

se_status se_hub_mkdirs(const char *path, se_error *err) {
    char *p = se_strdup(path);
    if (!p) return se_err(err, SE_E_NOMEM, "out of memory");
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                se_status r = se_err(err, SE_E_IO, "%s: cannot create: %s", p, strerror(errno));
                se_free(p);
                return r;
            }
            *s = c;
            if (!c) break;
        }
    }
    se_free(p);
    return SE_OK;
}

bool se_hub_is_commit(const char *s) {
    size_t n = 0;
    for (; s[n]; n++)
        if (!isdigit((unsigned char)s[n]) && !(s[n] >= 'a' && s[n] <= 'f')) return false;
    return n == 40;
}

/* True when s is n lowercase hex digits. */
static bool is_hex(const char *s, size_t n) {
    size_t i = 0;
    for (; s[i]; i++)
        if (!isdigit((unsigned char)s[i]) && !(s[i] >= 'a' && s[i] <= 'f')) return false;
    return i == n;
}

se_status se_hub_verify(const char *path, const char *etag, int64_t size, bool *ok, se_error *err) {
    *ok = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return se_err(err, SE_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return SE_OK; /* not a file: not good */
    }
    if (size >= 0 && st.st_size != size) {
        close(fd);
        return SE_OK;
    }
    bool sha256 = is_hex(etag, 64), sha1 = is_hex(etag, 40);
    if (!sha256 && !sha1) {
        close(fd);
        *ok = true; /* an etag that is no digest: the size is all we can check */
        return SE_OK;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t cap = 1 << 20;
    unsigned char *buf = se_malloc(cap);
    se_status s = SE_OK;
    if (!md || !buf || !EVP_DigestInit_ex(md, sha256 ? EVP_sha256() : EVP_sha1(), NULL)) {
        s = se_err(err, SE_E_NOMEM, "out of memory");
        goto done;
    }
    if (sha1) {
        /* git's blob id: sha1("blob <size>\0" + content) */
        char head[40];
        int hn = snprintf(head, sizeof head, "blob %lld", (long long)st.st_size);
        EVP_DigestUpdate(md, head, (size_t)hn + 1);
    }
    for (;;) {
        ssize_t r = read(fd, buf, cap);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            s = se_err(err, SE_E_IO, "%s: cannot read: %s", path, strerror(errno));
            goto done;
        }
        if (r == 0) break;
        EVP_DigestUpdate(md, buf, (size_t)r);
    }
    unsigned char dig[EVP_MAX_MD_SIZE];
    unsigned int dn = 0;
    EVP_DigestFinal_ex(md, dig, &dn);
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    for (unsigned i = 0; i < dn; i++) sprintf(hex + 2 * i, "%02x", dig[i]);
    *ok = strcmp(hex, etag) == 0;
done:
    EVP_MD_CTX_free(md);
    se_free(buf);
    close(fd);
    return s;
}

se_status se_hub_link(const char *repo_dir, const char *commit, const char *rel, const char *etag, se_error *err) {
    char *ptr = fmt("%s/snapshots/%s/%s", repo_dir, commit, rel);
    size_t depth = 2;
    for (const char *p = rel; *p; p++) depth += *p == '/';
    size_t tn = depth * 3 + strlen("blobs/") + strlen(etag) + 1;
    char *target = se_malloc(tn), *tmp = ptr ? fmt("%s.tmp.%d", ptr, (int)getpid()) : NULL;
    se_status s = SE_OK;
    if (!ptr || !target || !tmp) {
        s = se_err(err, SE_E_NOMEM, "out of memory");
        goto done;
    }
    target[0] = 0;
    for (size_t i = 0; i < depth; i++) strcat(target, "../");
    strcat(target, "blobs/");
    strcat(target, etag);
    char *slash = strrchr(ptr, '/');
    *slash = 0;
    s = se_hub_mkdirs(ptr, err);
    *slash = '/';
    if (s != SE_OK) goto done;
    unlink(tmp);
    if (symlink(target, tmp) != 0 || rename(tmp, ptr) != 0) {
        s = se_err(err, SE_E_IO, "%s: cannot link: %s", ptr, strerror(errno));
        unlink(tmp);
    }
done:
    se_free(ptr), se_free(target), se_free(tmp);
    return s;
}

int se_hub_lock(const char *root, const char *repo_id, const char *etag, se_error *err) {
    char *rd = se_hub_repo_dir("", repo_id); /* "/models--ORG--NAME" */
    char *dir = rd ? fmt("%s/.locks%s", root, rd) : NULL;
    char *path = dir ? fmt("%s/%s.lock", dir, etag) : NULL;
    int fd = -1;
    if (!path) {
        se_err(err, SE_E_NOMEM, "out of memory");
    } else if (se_hub_mkdirs(dir, err) == SE_OK) {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            se_err(err, SE_E_IO, "%s: cannot open: %s", path, strerror(errno));
        } else {
            int r;
            while ((r = flock(fd, LOCK_EX)) != 0 && errno == EINTR) {
            }
            if (r != 0) {
                se_err(err, SE_E_IO, "%s: cannot lock: %s", path, strerror(errno));
                close(fd), fd = -1;
            }
        }
    }
    se_free(rd), se_free(dir), se_free(path);
    return fd;
}

void se_hub_unlock(int fd) {
    if (fd < 0) return;
    flock(fd, LOCK_UN);
    close(fd);
}

bool se_hub_read_ref(const char *repo_dir, const char *revision, char commit[41]) {
    char *p = fmt("%s/refs/%s", repo_dir, revision);
    if (!p) return false;
    FILE *f = fopen(p, "rb");
    se_free(p);
    if (!f) return false;
    char buf[64];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    while (n && isspace((unsigned char)buf[n - 1])) buf[--n] = 0;
    if (!se_hub_is_commit(buf)) return false;
    memcpy(commit, buf, 41);
    return true;
}

se_status se_hub_write_ref(const char *repo_dir, const char *revision, const char *commit, se_error *err) {
    char *p = fmt("%s/refs/%s", repo_dir, revision);
    char *tmp = p ? fmt("%s.tmp.%d", p, (int)getpid()) : NULL;
    se_status s = SE_OK;
    if (!tmp) {
        s = se_err(err, SE_E_NOMEM, "out of memory");
        goto done;
    }
    char *slash = strrchr(p, '/');
    *slash = 0;
    s = se_hub_mkdirs(p, err);
    *slash = '/';
    if (s != SE_OK) goto done;
    FILE *f = fopen(tmp, "wb");
    /* huggingface_hub writes the commit without a newline */
    if (!f || fputs(commit, f) == EOF || fclose(f) != 0 || rename(tmp, p) != 0) {
        s = se_err(err, SE_E_IO, "%s: cannot write: %s", p, strerror(errno));
        if (f) unlink(tmp);
    }
done:
    se_free(p), se_free(tmp);
    return s;
}

/* ---- listing and removal ---- */

/* qsort's comparison of two strings. */
static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sums the sizes of dir's regular files, skipping *.incomplete; counts them. */
static uint64_t dir_bytes(const char *dir, size_t *n_entries, bool blobs) {
    uint64_t total = 0;
    *n_entries = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        size_t L = strlen(e->d_name);
        if (blobs && L > 11 && strcmp(e->d_name + L - 11, ".incomplete") == 0) continue;
        (*n_entries)++;
        if (!blobs) continue;
        char *p = fmt("%s/%s", dir, e->d_name);
        struct stat st;
        if (p && lstat(p, &st) == 0 && S_ISREG(st.st_mode)) total += (uint64_t)st.st_size;
        se_free(p);
    }
    closedir(d);
    return total;
}

/* The comma-separated names of the files in refs/ (one level). */
static void list_refs(const char *dir, char *out, size_t cap) {
    out[0] = 0;
    DIR *d = opendir(dir);
    if (!d) return;
    char *names[64];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64)
        if (e->d_name[0] != '.' && (names[n] = se_strdup(e->d_name))) n++;
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        size_t L = strlen(out);
        snprintf(out + L, cap - L, "%s%s", i ? "," : "", names[i]);
        se_free(names[i]);
    }
}

se_status se_hub_list(const se_hub_params *params, se_hub_list_fn fn, void *user, se_error *err) {
    if (!fn) return se_err(err, SE_E_INVALID, "se_hub_list: fn must not be NULL");
    char *root = se_hub_cache_root(params);
    if (!root) return se_err(err, SE_E_NOMEM, "out of memory");
    DIR *d = opendir(root);
    if (!d) {
        se_status s = errno == ENOENT ? SE_OK : se_err(err, SE_E_IO, "%s: cannot open: %s", root, strerror(errno));
        se_free(root);
        return s;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    se_status s = SE_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "models--", 8) != 0 || !strstr(e->d_name + 8, "--")) continue;
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 16;
            char **nn = se_realloc(names, nc * sizeof *nn);
            if (!nn) {
                s = se_err(err, SE_E_NOMEM, "out of memory");
                break;
            }
            names = nn, cap = nc;
        }
        if (!(names[n] = se_strdup(e->d_name))) {
            s = se_err(err, SE_E_NOMEM, "out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (s == SE_OK) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && s == SE_OK; i++) {
        /* models--ORG--NAME -> ORG/NAME */
        char *id = se_strdup(names[i] + 8), *sep = id ? strstr(id, "--") : NULL;
        char *dir = fmt("%s/%s", root, names[i]);
        char *blobs = dir ? fmt("%s/blobs", dir) : NULL, *snaps = dir ? fmt("%s/snapshots", dir) : NULL;
        char *refs_dir = dir ? fmt("%s/refs", dir) : NULL;
        if (!sep || !blobs || !snaps || !refs_dir) {
            s = se_err(err, SE_E_NOMEM, "out of memory");
        } else {
            sep[0] = '/';
            memmove(sep + 1, sep + 2, strlen(sep + 2) + 1);
            char refs[512];
            size_t nb, ns;
            se_hub_cached c = {.repo_id = id, .path = dir};
            c.size_bytes = dir_bytes(blobs, &nb, true);
            dir_bytes(snaps, &ns, false);
            c.n_snapshots = ns;
            list_refs(refs_dir, refs, sizeof refs);
            c.refs = refs;
            if (fn(&c, user)) i = n;
        }
        se_free(id), se_free(dir), se_free(blobs), se_free(snaps), se_free(refs_dir);
    }
    for (size_t i = 0; i < n; i++) se_free(names[i]);
    se_free(names);
    se_free(root);
    return s;
}

/* nftw's callback for removing a tree: files and links, then folders. */
static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) == 0 ? 0 : -1;
}

se_status se_hub_remove(const char *repo_id, const se_hub_params *params, se_error *err) {
    if (!repo_id || !se_hub_is_repo_id(repo_id))
        return se_err(err, SE_E_INVALID, "'%s' is not a hub repository id (ORG/NAME)", repo_id ? repo_id : "(null)");
    char *root = se_hub_cache_root(params);
    char *dir = root ? se_hub_repo_dir(root, repo_id) : NULL;
    char *rd = se_hub_repo_dir("", repo_id);
    char *locks = root && rd ? fmt("%s/.locks%s", root, rd) : NULL;
    se_status s = SE_OK;
    struct stat st;
    if (!locks) {
        s = se_err(err, SE_E_NOMEM, "out of memory");
    } else if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        s = se_err(err, SE_E_IO, "%s is not in the cache (%s)", repo_id, root);
    } else if (nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
        s = se_err(err, SE_E_IO, "%s: cannot remove: %s", dir, strerror(errno));
    } else {
        nftw(locks, rm_entry, 16, FTW_DEPTH | FTW_PHYS); /* absent is fine */
    }
    se_free(root), se_free(dir), se_free(rd), se_free(locks);
    return s;
}
