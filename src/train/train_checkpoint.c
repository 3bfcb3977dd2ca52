/*
 * train/train_checkpoint.c - training checkpoints: the parameters, AdamW's
 * moments and its step, saved so that a resumed run continues with the
 * same bits (the data order is the trainer's to restore).
 *
 * Floats go to safetensors (se_st_write: F32, written to a temporary name
 * and renamed); the step and AdamW's params to trainer_state.json, floats
 * printed with 9 significant digits so that they read back as the same
 * float32.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"
#include "json.h"
#include "safetensors.h"
#include "train/train_adamw.h"

/* dir/name into buf (SE_E_INVALID when it does not fit). */
static se_status join(char *buf, size_t cap, const char *dir, const char *name, se_error *err) {
    int n = snprintf(buf, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) return se_err(err, SE_E_INVALID, "checkpoint: path too long: %s/%s", dir, name);
    return SE_OK;
}

/* Writes the tensors data[i] (the model's parameters' shapes, names
 * prefixed with prefix) to path. */
static se_status write_set(const char *path, const se_tmodel *m, const char *prefix, const float *const *data,
                           se_error *err) {
    se_st_out *t = se_calloc(m->n_p ? m->n_p : 1, sizeof *t);
    char *names = se_malloc((m->n_p ? m->n_p : 1) * 128);
    se_status s = SE_OK;
    if (!t || !names) s = se_err(err, SE_E_NOMEM, "checkpoint: out of memory");
    for (size_t i = 0; s == SE_OK && i < m->n_p; i++) {
        const se_tparam *p = &m->p[i];
        snprintf(names + i * 128, 128, "%s%s", prefix, p->name);
        t[i].name = names + i * 128;
        t[i].n_dims = p->cols > 1 ? 2 : 1;
        t[i].shape[0] = (int64_t)p->rows, t[i].shape[1] = (int64_t)p->cols;
        t[i].data = data[i];
    }
    if (s == SE_OK) s = se_st_write(path, t, m->n_p, err);
    se_free(t);
    se_free(names);
    return s;
}

se_status se_train_checkpoint_save(const char *dir, const se_tmodel *m, const se_adamw *o, se_error *err) {
    if (!dir || !m || !o) return se_err(err, SE_E_INVALID, "se_train_checkpoint_save: NULL argument");
    if (o->n != m->n_floats) return se_err(err, SE_E_INVALID, "se_train_checkpoint_save: the optimiser is another model's");
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return se_err(err, SE_E_IO, "checkpoint: cannot make %s: %s", dir, strerror(errno));
    char path[4096];
    const float **d = se_calloc(m->n_p ? m->n_p : 1, sizeof *d);
    if (!d) return se_err(err, SE_E_NOMEM, "checkpoint: out of memory");
    se_status s = join(path, sizeof path, dir, "model.safetensors", err);
    for (size_t i = 0; i < m->n_p; i++) d[i] = m->p[i].w;
    if (s == SE_OK) s = write_set(path, m, "", d, err);
    if (s == SE_OK) s = join(path, sizeof path, dir, "optimizer.safetensors", err);
    if (s == SE_OK) { /* both moment sets in one file: exp_avg/ names then exp_avg_sq/ names */
        se_st_out *t = se_calloc(2 * m->n_p + 1, sizeof *t);
        char *names = se_malloc((2 * m->n_p + 1) * 128);
        if (!t || !names) s = se_err(err, SE_E_NOMEM, "checkpoint: out of memory");
        size_t off = 0;
        for (size_t i = 0; s == SE_OK && i < m->n_p; i++) {
            const se_tparam *p = &m->p[i];
            for (int k = 0; k < 2; k++) {
                se_st_out *u = &t[2 * i + (size_t)k];
                snprintf(names + (2 * i + (size_t)k) * 128, 128, "%s/%s", k ? "exp_avg_sq" : "exp_avg", p->name);
                u->name = names + (2 * i + (size_t)k) * 128;
                u->n_dims = 1, u->shape[0] = (int64_t)p->n;
                u->data = (k ? o->v : o->m) + off;
            }
            off += p->n;
        }
        if (s == SE_OK) s = se_st_write(path, t, 2 * m->n_p, err);
        se_free(t);
        se_free(names);
    }
    se_free(d);
    if (s != SE_OK) return s;
    /* trainer_state.json last */
    char tmp[4200];
    if ((s = join(path, sizeof path, dir, "trainer_state.json", err)) != SE_OK) return s;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return se_err(err, SE_E_IO, "checkpoint: cannot write %s: %s", tmp, strerror(errno));
    const se_adamw_params *p = &o->p;
    fprintf(f,
            "{\n  \"global_step\": %zu,\n  \"n_parameters\": %zu,\n  \"optimizer\": \"AdamW\",\n  \"lr\": %.9g,\n"
            "  \"beta1\": %.9g,\n  \"beta2\": %.9g,\n  \"eps\": %.9g,\n  \"weight_decay\": %.9g,\n"
            "  \"max_grad_norm\": %.9g,\n  \"warmup_steps\": %zu,\n  \"total_steps\": %zu\n}\n",
            o->step, m->n_floats, (double)p->lr, (double)p->beta1, (double)p->beta2, (double)p->eps,
            (double)p->weight_decay, (double)p->max_grad_norm, p->warmup_steps, p->total_steps);
    bool ok = !ferror(f) && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return se_err(err, SE_E_IO, "checkpoint: cannot write %s: %s", path, strerror(errno));
    }
    return SE_OK;
}

/* Copies the F32 tensor name of f (n floats) into dst, or says which is
 * missing or misshapen. */
static se_status read_tensor(const se_st_file *f, const char *name, size_t n, float *dst, se_error *err) {
    const se_st_tensor *t = se_st_find(f, name);
    if (!t) return se_err(err, SE_E_FORMAT, "%s: no tensor %s", f->path, name);
    if (t->dtype != SE_ST_F32 || t->n_elem != n)
        return se_err(err, SE_E_FORMAT, "%s: tensor %s is %s with %zu values, not F32 with %zu", f->path, name,
                      se_st_dtype_name(t->dtype), t->n_elem, n);
    memcpy(dst, t->data, n * sizeof *dst);
    return SE_OK;
}

se_status se_train_checkpoint_load(const char *dir, se_tmodel *m, se_adamw *o, se_error *err) {
    if (!dir || !m || !o) return se_err(err, SE_E_INVALID, "se_train_checkpoint_load: NULL argument");
    if (o->n != m->n_floats) return se_err(err, SE_E_INVALID, "se_train_checkpoint_load: the optimiser is another model's");
    char path[4096];
    json_t *j = NULL;
    se_st_file mf = {0}, of = {0};
    int64_t step = 0, n_par = 0, warm = 0, total = 0;
    double lr = 0, b1 = 0, b2 = 0, eps = 0, wd = 0, mx = 0;
    se_status s = join(path, sizeof path, dir, "trainer_state.json", err);
    if (s == SE_OK) s = se_json_load_file(path, &j, err);
    if (s == SE_OK && !json_is_object(j)) s = se_err(err, SE_E_FORMAT, "%s: not a JSON object", path);
    if (s == SE_OK) s = se_json_int_strict(j, path, "global_step", 0, INT64_MAX, -1, &step, err);
    if (s == SE_OK) s = se_json_int_strict(j, path, "n_parameters", 0, INT64_MAX, -1, &n_par, err);
    if (s == SE_OK && (step < 0 || n_par < 0))
        s = se_err(err, SE_E_FORMAT, "%s: no %s", path, step < 0 ? "global_step" : "n_parameters");
    if (s == SE_OK && (size_t)n_par != m->n_floats)
        s = se_err(err, SE_E_FORMAT, "%s: n_parameters %lld, the model has %zu", path, (long long)n_par, m->n_floats);
    if (s == SE_OK) s = se_json_real_strict(j, path, "lr", 1e-30, 1e30, o->p.lr, &lr, err);
    if (s == SE_OK) s = se_json_real_strict(j, path, "beta1", 0, 0.999999999, o->p.beta1, &b1, err);
    if (s == SE_OK) s = se_json_real_strict(j, path, "beta2", 0, 0.999999999, o->p.beta2, &b2, err);
    if (s == SE_OK) s = se_json_real_strict(j, path, "eps", 1e-45, 1e30, o->p.eps, &eps, err);
    if (s == SE_OK) s = se_json_real_strict(j, path, "weight_decay", 0, 1e30, o->p.weight_decay, &wd, err);
    if (s == SE_OK) s = se_json_real_strict(j, path, "max_grad_norm", -1e30, 1e30, o->p.max_grad_norm, &mx, err);
    if (s == SE_OK) s = se_json_int_strict(j, path, "warmup_steps", 0, INT64_MAX, (int64_t)o->p.warmup_steps, &warm, err);
    if (s == SE_OK) s = se_json_int_strict(j, path, "total_steps", 0, INT64_MAX, (int64_t)o->p.total_steps, &total, err);
    json_decref(j);
    /* read everything into scratch first, so that a bad file changes nothing */
    float *w = NULL, *mm = NULL, *vv = NULL;
    if (s == SE_OK) {
        w = se_malloc((m->n_floats + 1) * sizeof *w);
        mm = se_malloc((m->n_floats + 1) * sizeof *mm);
        vv = se_malloc((m->n_floats + 1) * sizeof *vv);
        if (!w || !mm || !vv) s = se_err(err, SE_E_NOMEM, "checkpoint: out of memory");
    }
    if (s == SE_OK) s = join(path, sizeof path, dir, "model.safetensors", err);
    if (s == SE_OK) s = se_st_open(path, false, &mf, err);
    if (s == SE_OK) s = join(path, sizeof path, dir, "optimizer.safetensors", err);
    if (s == SE_OK) s = se_st_open(path, false, &of, err);
    size_t off = 0;
    for (size_t i = 0; s == SE_OK && i < m->n_p; i++) {
        const se_tparam *p = &m->p[i];
        char nm[160];
        s = read_tensor(&mf, p->name, p->n, w + off, err);
        snprintf(nm, sizeof nm, "exp_avg/%s", p->name);
        if (s == SE_OK) s = read_tensor(&of, nm, p->n, mm + off, err);
        snprintf(nm, sizeof nm, "exp_avg_sq/%s", p->name);
        if (s == SE_OK) s = read_tensor(&of, nm, p->n, vv + off, err);
        off += p->n;
    }
    if (s == SE_OK) {
        memcpy(m->w_arena, w, m->n_floats * sizeof *w);
        memcpy(o->m, mm, m->n_floats * sizeof *mm);
        memcpy(o->v, vv, m->n_floats * sizeof *vv);
        o->step = (size_t)step;
        o->p = (se_adamw_params){.lr = (float)lr, .beta1 = (float)b1, .beta2 = (float)b2, .eps = (float)eps,
                                 .weight_decay = (float)wd, .max_grad_norm = (float)mx,
                                 .warmup_steps = (size_t)warm, .total_steps = (size_t)total};
    }
    se_st_close(&mf);
    se_st_close(&of);
    se_free(w);
    se_free(mm);
    se_free(vv);
    return s;
}
